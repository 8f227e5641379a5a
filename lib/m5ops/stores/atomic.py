"""Atomic file writes: a reader or a crash sees the old file or the new one, never a part.

Every writer puts its bytes in a temporary file in the *same directory* as the target (so
the final rename never crosses a filesystem), fsyncs it, then either ``os.replace``-s it
over the target or hard-links it into place when the target must not exist yet
("never store a day twice"). The directory is fsynced afterwards so the rename itself
survives a power cut.

A process killed mid-write leaves a hidden ``.<name>.tmp-<pid>-<hex>`` file next to the
target; it is never mistaken for the target, and :func:`remove_stale_temps` clears old ones.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".tmp-"


def temp_path_for(final_path: str | os.PathLike) -> Path:
    """A fresh, unused temporary path next to ``final_path`` (hidden, named after it)."""
    final = Path(final_path)
    return final.with_name(f".{final.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(directory: str | os.PathLike) -> None:
    """Flush a directory's entries (renames, links, unlinks) to disk."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file, or every file and folder under a directory, to disk."""
    path = Path(path)
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_symlink():
                continue  # a link's target lives elsewhere; not ours to flush
            if child.is_dir():
                fsync_dir(child)
            else:
                _fsync_file(child)
        fsync_dir(path)
    else:
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    """fsync one regular file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_exclusive(tmp_path: str | os.PathLike, final_path: str | os.PathLike) -> None:
    """Move a finished temp file to ``final_path``; FileExistsError if it already exists.

    ``os.link`` fails atomically when the target exists, which ``os.replace`` cannot do; on
    refusal both files are left as they were (the caller owns the temp file).
    """
    tmp, final = Path(tmp_path), Path(final_path)
    _fsync_file(tmp)
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise FileExistsError(
            17, f"{final} already exists; refusing to overwrite it (remove it first to replace it)",
            str(final)) from None
    os.unlink(tmp)
    fsync_dir(final.parent)


def _publish_replace(tmp: Path, final: Path) -> None:
    """Move a finished temp file or directory over ``final`` with ``os.replace``."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, *, exclusive: bool = False) -> Iterator[Path]:
    """Yield an unused temp path next to ``final_path``; publish it on success, remove it on error.

    The caller creates the temp path (a file; or a directory, when not ``exclusive`` and the
    target does not exist or is an empty directory). ``exclusive=True`` publishes with
    :func:`publish_exclusive`, so an existing target raises FileExistsError and stays untouched.
    """
    final = Path(final_path)
    tmp = temp_path_for(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(2, f"nothing was written to the temp path for {final}", str(tmp))
        if exclusive:
            publish_exclusive(tmp, final)
        else:
            _publish_replace(tmp, final)
    finally:
        _remove_quietly(tmp)  # after success the temp name is gone already; after failure, clean up


def _remove_quietly(path: Path) -> None:
    """Remove a leftover temp file or directory; a missing one is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (``exclusive``: refuse if ``path`` exists)."""
    with atomic_path(path, exclusive=exclusive) as tmp:
        with open(tmp, "xb") as handle:  # "x": the temp name is ours alone
            handle.write(data)


def write_text_atomic(path: str | os.PathLike, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"), exclusive=exclusive)


def write_json_atomic(path: str | os.PathLike, obj, *, exclusive: bool = False, **dumps_kwargs) -> None:
    """Write ``obj`` as indented JSON (plus newline) to ``path`` atomically."""
    dumps_kwargs.setdefault("indent", 2)
    write_text_atomic(path, json.dumps(obj, **dumps_kwargs) + "\n", exclusive=exclusive)


def remove_stale_temps(directory: str | os.PathLike, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temp files left in ``directory`` by killed writers; returns what was removed.

    Only names this module makes (``.<name>.tmp-<pid>-<hex>``) older than ``older_than_s`` are
    touched, so a write in progress in another process is left alone.
    """
    removed = []
    cutoff = time.time() - older_than_s
    for path in Path(directory).glob(f".*{TEMP_MARK}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_mtime < cutoff:
                _remove_quietly(path)
                removed.append(path)
    return removed
