"""The ``m5ops`` command line and the demo."""
from m5ops.cli.main import main

__all__ = ["main"]
