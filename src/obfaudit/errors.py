"""Errors that the CLI turns into one clear line and a non-zero exit."""


class ObfauditError(Exception):
    """A problem the user can fix: bad input, missing or corrupt files, bad arguments."""


class DataError(ObfauditError):
    """A dataset is missing, corrupt or malformed."""


class ModelFileError(ObfauditError):
    """A saved model is missing, corrupt, foreign or does not fit."""


class ThreatModelError(ObfauditError):
    """An attack was handed knowledge its party must not have."""
