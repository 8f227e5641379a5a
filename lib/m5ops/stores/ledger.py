"""The forecast ledger: every issued forecast, one folder per issue day, one Parquet file per model.

Layout under ``<workspace>/forecasts``::

    issue_day=001885/lightgbm.parquet         the issue of model lightgbm on day 1885
    issue_day=001885/seasonal-naive.parquet   the issue of another model the same day

An *issue* is one model's forecast of days ``issue_day+1 .. issue_day+28`` for every series,
made on ``issue_day``. Each issue is its own file, published whole with ``os.link`` (see
``stores/atomic.py``): a crash leaves the whole issue or none of it, and a second copy of an
issue is refused, so an issue is never stored twice. One file per (issue day, model) rather than
one file for all models of the day: models issue one after another, so a model that fails, or a
re-run after a crash, never rewrites (or loses) the issues already made that day.

Each file holds the columns ``issue_day, model, version, target_day, series, value`` (int32,
dictionary strings, int32, int32, float32) in (target_day, series) order with **one row group per
target day**, so reading the forecasts that target day ``d`` reads one row group from each of
the files of issue days ``d-28 .. d-1``: its cost does not grow with the ledger's length. The
series column is delta-encoded and the values byte-stream-split, zstd-compressed: about 3 MB per
issue at the full M5 shape. The price source of each target day and the run that issued it are
in the file's metadata (key ``m5ops.issue``).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from m5ops.data.schema import HORIZON, day_label
from m5ops.errors import LedgerError
from m5ops.stores.atomic import atomic_path, fsync_dir, remove_stale_temps
from m5ops.stores.clock import utc_now
from m5ops.stores.registry import NAME_RULE, is_model_name

LEDGER_FORMAT = 1
META_KEY = b"m5ops.issue"
PRICE_SOURCES = ("holdback", "carried_forward")
COLUMNS = ["issue_day", "model", "version", "target_day", "series", "value"]
_ISSUE_DIR = re.compile(r"^issue_day=(\d{6})$")
_ISSUE_FILE = re.compile(rf"^({NAME_RULE})\.parquet$")
_DICTIONARY_COLUMNS = ["issue_day", "model", "version", "target_day"]
_ENCODINGS = {"series": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"}


@dataclass
class Issue:
    """One model's forecast of the ``HORIZON`` days after ``issue_day``, for every series.

    ``values[s, h - 1]`` is the forecast of series ``s`` for day ``issue_day + h``;
    ``price_source[h - 1]`` says where that day's prices came from (``PRICE_SOURCES``).
    """

    model: str
    version: str
    issue_day: int
    values: np.ndarray
    price_source: tuple[str, ...]
    run_id: str | None = None
    issued_at: str = field(default_factory=utc_now)

    @property
    def target_days(self) -> range:
        return range(self.issue_day + 1, self.issue_day + HORIZON + 1)

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    def price_source_counts(self) -> dict[str, int]:
        """How many target days took their prices from each source."""
        return {source: self.price_source.count(source) for source in PRICE_SOURCES if source in self.price_source}

    def totals(self) -> pd.Series:
        """The forecast's total over all series, by target day."""
        return pd.Series(self.values.sum(axis=0, dtype=np.float64), index=pd.Index(self.target_days, name="day"))

    def check(self) -> "Issue":
        """Self if it can be stored; a LedgerError saying what is wrong otherwise."""
        if not is_model_name(self.model):
            raise LedgerError(f"cannot store an issue of model {self.model!r}: not a slug {NAME_RULE}")
        values = np.asarray(self.values)
        if values.ndim != 2 or values.shape[1] != HORIZON or values.shape[0] == 0:
            raise LedgerError(f"an issue holds (n_series, {HORIZON}) values, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise LedgerError(f"the issue of {self.model} on {day_label(self.issue_day)} has "
                              f"{int((~np.isfinite(values)).sum())} NaN/inf values; every forecast must be a number")
        if len(self.price_source) != HORIZON or set(self.price_source) - set(PRICE_SOURCES):
            raise LedgerError(f"price_source must name one of {PRICE_SOURCES} for each of the {HORIZON} "
                              f"target days, got {self.price_source!r}")
        self.values = values.astype(np.float32, copy=False)
        self.price_source = tuple(self.price_source)
        return self


class ForecastLedger:
    """The issued forecasts of one workspace (``workspace.forecasts_dir``)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @classmethod
    def of(cls, workspace) -> "ForecastLedger":
        """The ledger of a ``Workspace``."""
        return cls(workspace.forecasts_dir)

    def __repr__(self) -> str:
        return f"ForecastLedger({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------------
    def issue_dir(self, issue_day: int) -> Path:
        """The folder of the issues made on ``issue_day``."""
        return self.root / f"issue_day={int(issue_day):06d}"

    def issue_path(self, model: str, issue_day: int) -> Path:
        """The file of ``model``'s issue on ``issue_day`` (whether or not it exists)."""
        return self.issue_dir(issue_day) / f"{model}.parquet"

    # -- writing -------------------------------------------------------------------------------
    def write(self, issue: Issue) -> Path:
        """Store an issue whole or not at all; LedgerError if that model already issued that day."""
        issue.check()
        final = self.issue_path(issue.model, issue.issue_day)
        if final.exists():
            raise self._twice(issue, final)
        self._make_dir(final.parent)
        try:
            with atomic_path(final, exclusive=True) as tmp:
                pq.write_table(_issue_table(issue), tmp, row_group_size=issue.n_series, compression="zstd",
                               use_dictionary=_DICTIONARY_COLUMNS, column_encoding=_ENCODINGS)
        except FileExistsError:
            raise self._twice(issue, final) from None
        return final

    def _make_dir(self, folder: Path) -> None:
        """Create an issue day's folder, durably (its entry in the ledger's folder is flushed)."""
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(folder.parent)

    @staticmethod
    def _twice(issue: Issue, path: Path) -> LedgerError:
        return LedgerError(f"{issue.model} already issued its forecast on {day_label(issue.issue_day)} ({path});"
                           " an issue is never stored twice")

    # -- reading -------------------------------------------------------------------------------
    def issue_days(self, model: str | None = None) -> list[int]:
        """Days with at least one issue (of ``model``, if given), ascending."""
        if not self.root.is_dir():
            return []
        days = sorted(int(m.group(1)) for m in map(_ISSUE_DIR.match, os.listdir(self.root)) if m)
        return days if model is None else [d for d in days if self.issue_path(model, d).is_file()]

    def models_issued(self, issue_day: int) -> list[str]:
        """The models that issued on ``issue_day``, by name (temporary files are not issues)."""
        folder = self.issue_dir(issue_day)
        if not folder.is_dir():
            return []
        return sorted(m.group(1) for m in map(_ISSUE_FILE.match, os.listdir(folder)) if m)

    def has_issue(self, model: str, issue_day: int) -> bool:
        return self.issue_path(model, issue_day).is_file()

    def read_issue(self, model: str, issue_day: int) -> Issue:
        """The issue of ``model`` on ``issue_day``; LedgerError naming the issue days it has if absent."""
        path = self.issue_path(model, issue_day)
        if not path.is_file():
            days = self.issue_days(model)
            held = f"its issues: {day_label(days[0])}..{day_label(days[-1])} ({len(days)})" if days else "it has none"
            raise LedgerError(f"no forecast of {model!r} was issued on {day_label(issue_day)}; {held}")
        with _opened(path) as file:
            meta = _metadata(path, file.schema_arrow)
            table = file.read(columns=["value"])
        n = meta["n_series"]
        if table.num_rows != n * HORIZON:
            raise LedgerError(f"{path} holds {table.num_rows} rows, not {n} x {HORIZON}; delete it to issue again")
        values = table.column("value").to_numpy().reshape(HORIZON, n).T
        return Issue(model, meta["version"], int(issue_day), np.ascontiguousarray(values),
                     tuple(meta["price_source"]), meta.get("run_id"), meta.get("issued_at", ""))

    def latest(self, model: str) -> Issue | None:
        """The most recent issue of ``model``, or None if it never issued."""
        for day in reversed(self.issue_days()):
            if self.has_issue(model, day):
                return self.read_issue(model, day)
        return None

    def targeting(self, day: int) -> pd.DataFrame:
        """Every stored forecast of day ``day`` (the ledger's columns), from issue days ``day-28..day-1`` only."""
        parts = []
        for issue_day in range(day - HORIZON, day):
            for model in self.models_issued(issue_day):
                parts.append(self._target_day_rows(self.issue_path(model, issue_day), day - issue_day - 1, day))
        if not parts:
            return _empty_frame()
        return pa.concat_tables(parts).to_pandas()

    @staticmethod
    def _target_day_rows(path: Path, row_group: int, day: int) -> pa.Table:
        """One target day's rows of an issue file: its row group ``row_group``, checked."""
        with _opened(path) as file:
            table = file.read_row_group(row_group, columns=COLUMNS)
        targets = table.column("target_day").unique().to_pylist()
        if targets != [day]:
            raise LedgerError(f"{path}: row group {row_group} holds target days {targets}, not {day};"
                              " the file was not written by this ledger: delete it to issue again")
        return table.cast(_SCHEMA)

    # -- retention -----------------------------------------------------------------------------
    def prune(self, today: int, keep_days: int | None, keep_models: set[str] = frozenset()) -> list[Path]:
        """Delete issues made ``keep_days`` or more days before ``today``, except those of ``keep_models``.

        ``keep_days`` None keeps everything. Returns the files removed.
        """
        if keep_days is None:
            return []
        removed = []
        for issue_day in self.issue_days():
            if issue_day > today - keep_days:
                break
            for model in self.models_issued(issue_day):
                if model not in keep_models:
                    self.issue_path(model, issue_day).unlink(missing_ok=True)
                    removed.append(self.issue_path(model, issue_day))
            self._remove_if_empty(self.issue_dir(issue_day))
        return removed

    def _remove_if_empty(self, folder: Path) -> None:
        """Remove an issue day's folder once nothing is left in it."""
        with contextlib.suppress(OSError):  # not empty (another model's issue, a writer's temp file)
            folder.rmdir()
            fsync_dir(self.root)

    def clean_temporaries(self) -> int:
        """Remove temporary files that killed writers left behind; returns how many."""
        return sum(len(remove_stale_temps(self.issue_dir(day), older_than_s=0)) for day in self.issue_days())


_SCHEMA = pa.schema([("issue_day", pa.int32()), ("model", pa.dictionary(pa.int32(), pa.string())),
                     ("version", pa.dictionary(pa.int32(), pa.string())), ("target_day", pa.int32()),
                     ("series", pa.int32()), ("value", pa.float32())])


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """A dictionary column holding one string ``n`` times."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _issue_table(issue: Issue) -> pa.Table:
    """An issue as the ledger's long table, (target_day, series) order, its metadata attached."""
    n, rows = issue.n_series, issue.n_series * HORIZON
    table = pa.table({
        "issue_day": np.full(rows, issue.issue_day, dtype=np.int32),
        "model": _constant(issue.model, rows),
        "version": _constant(issue.version, rows),
        "target_day": np.repeat(np.arange(issue.issue_day + 1, issue.issue_day + HORIZON + 1, dtype=np.int32), n),
        "series": np.tile(np.arange(n, dtype=np.int32), HORIZON),
        "value": np.ascontiguousarray(issue.values.T).reshape(-1),
    }, schema=_SCHEMA)
    meta = {"format": LEDGER_FORMAT, "model": issue.model, "version": issue.version, "issue_day": issue.issue_day,
            "n_series": n, "horizon": HORIZON, "price_source": list(issue.price_source),
            "issued_at": issue.issued_at, "run_id": issue.run_id}
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[pq.ParquetFile]:
    """An issue file opened for reading; a LedgerError naming it if it cannot be read."""
    try:
        with pq.ParquetFile(path) as file:
            yield file
    except (pa.ArrowException, OSError) as exc:
        raise LedgerError(f"{path} cannot be read as an issue ({exc}); delete it to issue again") from None


def _metadata(path: Path, schema: pa.Schema) -> dict:
    """The ``m5ops.issue`` metadata of an issue file; LedgerError if it is not one."""
    raw = (schema.metadata or {}).get(META_KEY)
    try:
        meta = json.loads(raw)
        if meta["format"] > LEDGER_FORMAT:
            raise LedgerError(f"{path} has ledger format {meta['format']}, newer than this m5ops reads"
                              f" ({LEDGER_FORMAT}); upgrade m5ops")
        return meta
    except (TypeError, ValueError, KeyError) as exc:
        raise LedgerError(f"{path} is not an issue written by the ledger ({exc}); delete it to issue again") from None


def _empty_frame() -> pd.DataFrame:
    """The frame of ``targeting`` when no forecast targets the day."""
    return _SCHEMA.empty_table().to_pandas()
