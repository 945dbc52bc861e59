"""Models: a registry of the study's networks, created by name, saved as safetensors."""

from obfaudit.models import attack_nets as _attack_nets  # noqa: F401  (registers the builders)
from obfaudit.models import scaling as _scaling  # noqa: F401
from obfaudit.models import small as _small  # noqa: F401
from obfaudit.models._registry import (
    Role,
    archs,
    create_model,
    list_models,
    model_for,
    model_id,
    register_model,
)
from obfaudit.models.io import load_model, read_sidecar, save_model
from obfaudit.models.small import (
    RECNET_BOTTLENECK,
    InfNetCNN,
    InfNetMLP,
    ObfNetCNN,
    ObfNetMLP,
    Obfuscator,
)

__all__ = [
    "RECNET_BOTTLENECK",
    "Role",
    "archs",
    "model_for",
    "InfNetCNN",
    "InfNetMLP",
    "ObfNetCNN",
    "ObfNetMLP",
    "Obfuscator",
    "create_model",
    "list_models",
    "load_model",
    "model_id",
    "read_sidecar",
    "register_model",
    "save_model",
]
