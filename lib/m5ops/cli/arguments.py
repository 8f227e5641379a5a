"""Argument types and the parser of the ``m5ops`` command: a bad argument is one line and status 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr naming the fix, then exit status 2."""

    def error(self, message: str):
        print(f"{self.prog}: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def out_file(text: str) -> Path:
    """A file to write, in a folder that exists (nothing is created on the way)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name, e.g. {path / 'out.csv'}")
    if not path.resolve().parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.resolve().parent} does not exist; create it first or"
                                         " write elsewhere")
    return path
