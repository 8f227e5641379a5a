"""The one SQLite helper: short connections with a busy timeout, and schema migration in place.

Every call opens its own connection and closes it: safe across processes and threads, nothing
held open between calls. A write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken
before reading, so a read-then-update cannot interleave with another writer's). The file is in
WAL mode, so readers never wait for the writer.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from m5ops.errors import StoreError

BUSY_TIMEOUT_S = 10.0
MIGRATION_LOCK_SUFFIX = ".upgrade.lock"  # beside the file, held only while one process upgrades it
Migration = Callable[[sqlite3.Connection], None]


class Database:
    """An SQLite file whose schema is brought to ``len(migrations)`` on first open.

    ``migrations[i]`` takes a file from version ``i`` to ``i + 1``; each must be idempotent
    against a file that already has what it adds (files made before versioning).
    """

    def __init__(self, path: str | os.PathLike, migrations: Sequence[Migration], what: str = "database"):
        self.path = Path(path)
        self.what = what
        self.version = len(migrations)
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open {self.path}: folder {self.path.parent} does not exist;"
                             " create the workspace first (`m5ops init`)")
        self._migrate(migrations)

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    def error(self, err: sqlite3.Error) -> StoreError:
        """An SQLite error as one that names the file and what to do."""
        return StoreError(
            f"{self.what} {self.path}: {err}. If it is locked, another process held it over"
            f" {BUSY_TIMEOUT_S:.0f} s: retry; if it is not a database or is malformed, move it"
            " away (a new empty one is created) or restore it from a backup")

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection; for ``write``, inside one BEGIN IMMEDIATE transaction."""
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as err:
            raise self.error(err) from None
        conn.row_factory = sqlite3.Row
        try:
            # WAL + NORMAL: no fsync per commit; a power cut may lose the last commits, never
            # corrupt the file (SQLite's recommended pairing), and the write lock is held briefly
            conn.execute("PRAGMA synchronous=NORMAL")
            if write:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if write:
                conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise self.error(err) from None
        finally:
            conn.close()  # closing rolls back a transaction an error left open

    def read(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        """Every row of one query."""
        with self.connect() as conn:
            return conn.execute(sql, list(args)).fetchall()

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        """WAL mode and the schema brought up to date; a newer m5ops's file is refused."""
        if self._current():
            return
        # The switch to WAL needs the file to itself, and SQLite refuses it at once (no busy wait)
        # while another process reads: processes that open an old file at once take turns here.
        lock = FileLock(self.path.with_name(self.path.name + MIGRATION_LOCK_SUFFIX))
        try:
            lock.acquire(timeout=BUSY_TIMEOUT_S)
        except Timeout:
            raise StoreError(f"{self.path}: another process has been upgrading it for over {BUSY_TIMEOUT_S:.0f} s"
                             f" (it holds {lock.lock_file}); retry when it is done") from None
        try:
            with self.connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")  # persistent: set once, kept in the file
                found = conn.execute("PRAGMA user_version").fetchone()[0]
                if found >= self.version:
                    return
                conn.execute("BEGIN IMMEDIATE")
                for step in migrations[found:]:
                    step(conn)
                conn.execute(f"PRAGMA user_version = {self.version}")
                conn.execute("COMMIT")
        finally:
            lock.release()

    def _current(self) -> bool:
        """Whether the file is in WAL mode at this schema version; StoreError if it is newer than this m5ops."""
        with self.connect() as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > self.version:
            raise StoreError(f"{self.path} has schema version {found}; this m5ops knows"
                             f" {self.version}: upgrade m5ops")
        return found == self.version and mode.lower() == "wal"

    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity check reports; empty when the file is sound."""
        rows = self.read("PRAGMA integrity_check")
        return [row[0] for row in rows if row[0] != "ok"]


def sql_list(values: Sequence[str]) -> str:
    """SQL literal list for a CHECK constraint: ('a', 'b')."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def placeholders(values: Sequence) -> str:
    """``?, ?, ?`` for ``values``."""
    return ", ".join("?" * len(values))
