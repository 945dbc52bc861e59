from obfaudit._version import __version__
