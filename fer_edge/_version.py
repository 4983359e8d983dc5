"""Single source of the SDK version (read by setup.py and written into every sidecar)."""

__version__ = "0.1.0"
