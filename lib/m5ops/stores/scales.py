"""The scale state file: the running WRMSSE scale sums of every node, as of one stored day.

One ``.npz`` (``Workspace.scales_path``) holds named per-node arrays, the last day they cover
and the key of the hierarchy they were built for. It is written whole to a temporary file and
published with ``os.replace`` (``stores.atomic``), so a reader, a crash or a SIGKILL sees the
previous state or the new one, never a part. The state is derived data: when it is missing,
unreadable or built for other series, its owner rebuilds it from the day store.
"""
from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m5ops.errors import StoreError
from m5ops.stores.atomic import write_bytes_atomic

FORMAT = 1
_META = ("format", "last_day", "key")


@dataclass(frozen=True)
class StoredScales:
    """What the file holds: the day covered, the hierarchy key, the per-node arrays."""

    last_day: int
    key: str
    arrays: dict[str, np.ndarray]


class ScaleStore:
    """Reads and writes the scale state file at ``path``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ScaleStore({str(self.path)!r})"

    def write(self, arrays: Mapping[str, np.ndarray], *, last_day: int, key: str) -> None:
        """Replace the file with ``arrays`` as of ``last_day`` for hierarchy ``key``: whole or not at all."""
        clash = sorted(set(arrays) & set(_META))
        if clash:
            raise StoreError(f"scale arrays may not be named {clash}: those names hold the file's metadata")
        buffer = io.BytesIO()
        np.savez(buffer, format=np.int64(FORMAT), last_day=np.int64(last_day), key=np.str_(key),
                 **{name: np.asarray(value) for name, value in arrays.items()})
        write_bytes_atomic(self.path, buffer.getvalue())

    def read(self) -> StoredScales | None:
        """The stored state, or None when there is none; a StoreError when the file cannot be used."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as file:
                contents = {name: file[name] for name in file.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise StoreError(f"the scale state {self.path} cannot be read ({exc}); "
                             "it is rebuilt from the day store at the next arrival or evaluation") from exc
        missing = [name for name in _META if name not in contents]
        if missing or int(contents["format"]) != FORMAT:
            raise StoreError(f"the scale state {self.path} is not of format {FORMAT} (missing {missing}); "
                             "it is rebuilt from the day store at the next arrival or evaluation")
        arrays = {name: value for name, value in contents.items() if name not in _META}
        return StoredScales(int(contents["last_day"]), str(contents["key"]), arrays)

    def last_day(self) -> int | None:
        """The last day the stored state covers, or None when there is no usable state."""
        try:
            stored = self.read()
        except StoreError:
            return None
        return None if stored is None else stored.last_day
