"""Logging: one line per event, to stderr and to the workspace's log file."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"


def configure(log_dir: Path | None = None, level: int = logging.INFO, stream=None) -> None:
    """Send the ``m5ops`` loggers to stderr and, with a folder, to ``<folder>/m5ops.log``."""
    logger = logging.getLogger("m5ops")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_dir / "m5ops.log")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    logger.propagate = False
