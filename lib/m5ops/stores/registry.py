"""The model registry: models, their versions and schedules, in ``workspace/registry.json``.

Storage only: model kinds and their parameters are validated elsewhere (``m5ops.models``), the
file's shape in ``stores.registry_format`` (format 2; a format-1 file is upgraded in place the
first time it is read, after being validated as format 1).

Every change is a read-modify-write under ``registry.json.lock`` (``filelock``): read, validate,
apply the change, validate again, write a temp file in the same folder, fsync, ``os.replace``.
So two processes changing models at once lose nothing, and a reader that takes no lock still
sees a whole file. A malformed file is never overwritten: every write reads and validates
first, and refuses with a message naming the file and the position of the problem.

A deleted model becomes a tombstone under ``"deleted"``. Its name may be reused: the new model
starts again at ``v1`` and the tombstones keep the history of every earlier one.

A model's versions: a trained version is added as its model's current version (the previous
current one is ``retired``) or, refused by the gate, as ``rejected`` with the current one
unchanged; ``set_current`` makes another kept version current (rollback, promotion of a given
version); ``mark_artifacts_removed`` records what retention deleted.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from m5ops.errors import RegistryError
from m5ops.stores.atomic import write_json_atomic, write_text_atomic
from m5ops.stores.clock import utc_now
from m5ops.stores.registry_format import (  # noqa: F401  (re-exported: the registry's public names)
    DEFAULT_RETRAIN, FORMAT, NAME_RULE, RETRAIN_POLICIES, STORED_STATUSES, VERSION_FIELDS, VERSION_STATUSES,
    check_name, empty_registry, encode, is_model_name, model_problem, parse_retrain, plain, retrain_policy,
    schedule_problem, shape_problem, upgraded_from_format_1, version_number, version_problem)

DEFAULT_EVERY_DAYS = 7
LOCK_TIMEOUT_S = 30.0


def find_model(data: dict, name: str) -> dict:
    """The model called ``name`` in registry ``data``; RegistryError listing known models if absent."""
    model = data["models"].get(name)
    if model is not None:
        return model
    known = ", ".join(sorted(data["models"])) or "none yet"
    gone = " (a model of that name was deleted)" if name in data["deleted"] else ""
    raise RegistryError(f"no model named {name!r}{gone}; known models: {known}")


def find_version(model: dict, version_id: str) -> dict:
    """The version ``version_id`` of ``model``; RegistryError listing its versions if absent."""
    found = next((v for v in model["versions"] if v["id"] == version_id), None)
    if found is not None:
        return found
    ids = ", ".join(v["id"] for v in model["versions"]) or "none yet"
    raise RegistryError(f"model {model['name']!r} has no version {version_id!r}; its versions: {ids}")


def current_version(model: dict) -> dict | None:
    """The model's current version record, or None if it has never been trained."""
    wanted = model.get("current_version")
    return next((v for v in model["versions"] if v["id"] == wanted), None)


def next_id(model: dict) -> str:
    """The id the model's next version gets: one more than the highest so far."""
    return f"v{max((version_number(v['id']) for v in model['versions']), default=0) + 1}"


def is_due(model: dict, sim_day: int) -> bool:
    """Whether an active model is due by the calendar: never trained, or (weekly) trained long enough ago.

    The newest training counts, accepted or not: a version the gate rejected waits for the next
    scheduled training like any other, instead of being retried every day. Trainings triggered
    by degradation or drift are ``pipeline.triggers``'s.
    """
    if not model["schedule"]["active"]:
        return False
    if not model["versions"]:
        return True
    newest = max(model["versions"], key=lambda v: version_number(v["id"]))
    return "weekly" in retrain_policy(model) and sim_day - newest["sim_day"] >= model["schedule"]["every_days"]


class Registry:
    """The registry file at ``path``: reads without a lock, changes under ``path + '.lock'``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # short critical sections: poll often so waiting writers queue up quickly
        self._lock = FileLock(f"{self.path}.lock", timeout=LOCK_TIMEOUT_S, poll_interval=0.01)

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r})"

    @classmethod
    def create(cls, path: str | os.PathLike) -> Registry:
        """Create an empty registry at ``path``; RegistryError if a file is already there."""
        registry = cls(path)
        registry.path.parent.mkdir(parents=True, exist_ok=True)
        with registry._locked():
            try:
                write_json_atomic(registry.path, empty_registry(), exclusive=True)
            except FileExistsError:
                raise RegistryError(f"a registry already exists at {registry.path}; open it with"
                                    " Registry(path), or move it away to start afresh") from None
        return registry

    def ensure_exists(self) -> Registry:
        """Create an empty registry if there is none; check an existing one. Returns self."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if self.path.exists():
                self._read()
            else:
                write_json_atomic(self.path, empty_registry())
        return self

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the registry lock; RegistryError if another process keeps it too long."""
        try:
            self._lock.acquire()
        except Timeout:
            raise RegistryError(
                f"{self.path} stayed locked by another process for {LOCK_TIMEOUT_S:.0f} s"
                f" (lock file {self._lock.lock_file}); retry when that process is done"
                " (the lock is freed when its holder exits, even if it crashed)") from None
        try:
            yield
        finally:
            self._lock.release()

    def _malformed(self, what: str) -> RegistryError:
        """The error for an unreadable file: where, what, and what to do."""
        return RegistryError(f"registry {self.path} {what}. It was left untouched: fix it by hand"
                             " or restore it from a backup, then retry")

    def _parse(self) -> Any:
        """The file's JSON; RegistryError naming the file and where it is broken."""
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise RegistryError(f"no registry at {self.path}; create the workspace first"
                                " (`m5ops init`) or call Registry.create(path)") from None
        except UnicodeDecodeError as err:
            raise self._malformed(f"is not UTF-8 text (bad byte at offset {err.start})") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise self._malformed(
                f"is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None

    def _read(self) -> dict:
        """Load and validate the file (upgrading a format-1 file in place); RegistryError if malformed."""
        data = self._parse()
        if isinstance(data, dict) and data.get("format") == 1:
            return self._upgrade()
        if problem := shape_problem(data):
            raise self._malformed(f"is valid JSON but not a registry: {problem}")
        return data

    def _upgrade(self) -> dict:
        """Rewrite a format-1 file as format 2 under the lock, once validated as format 1."""
        with self._locked():  # the lock is reentrant: update() may hold it already
            data = self._parse()  # again, under the lock: another process may have upgraded it
            if isinstance(data, dict) and data.get("format") == 1:
                if problem := shape_problem(data, fmt=1):
                    raise self._malformed(f"is valid JSON but not a format-1 registry: {problem}")
                text, data = encode(upgraded_from_format_1(data))
                if problem := shape_problem(data):  # never write what cannot be read back
                    raise self._malformed(f"could not be upgraded to format {FORMAT}: {problem}")
                write_text_atomic(self.path, text)
            elif problem := shape_problem(data):
                raise self._malformed(f"is valid JSON but not a registry: {problem}")
        return data

    def update(self, fn: Callable[[dict], Any]) -> Any:
        """Apply ``fn(data)`` under the lock, check the result, write it; returns what fn returned."""
        with self._locked():
            data = self._read()  # refuses (and writes nothing) if the current file is malformed
            result = fn(data)
            text, data = encode(data)
            if problem := shape_problem(data):
                raise RegistryError(f"refused a change to {self.path}: it would leave the registry"
                                    f" malformed ({problem}); nothing was written")
            write_text_atomic(self.path, text)
        return result

    def data(self) -> dict:
        """The whole registry as read now (models and tombstones)."""
        return self._read()

    def models(self) -> dict[str, dict]:
        """Every live model, by name, in creation order."""
        return self._read()["models"]

    def deleted(self) -> dict[str, list[dict]]:
        """Tombstones of deleted models, by name (a name reused several times has several)."""
        return self._read()["deleted"]

    def get(self, name: str) -> dict:
        """One model's record; RegistryError naming it and the known models if absent."""
        return find_model(self._read(), name)

    def current(self, name: str) -> dict | None:
        """The current version record of model ``name``, or None if it has none."""
        return current_version(self.get(name))

    def next_version_id(self, name: str) -> str:
        """The id that the next add_version for ``name`` will assign (e.g. 'v4')."""
        return next_id(self.get(name))

    def due_for_training(self, sim_day: int) -> list[str]:
        """Active models never trained, or whose current version is every_days or more old."""
        return [name for name, model in self.models().items() if is_due(model, int(sim_day))]

    def add_model(self, name: str, kind: str, params: dict, active: bool = True,
                  every_days: int = DEFAULT_EVERY_DAYS, retrain: list[str] | None = None) -> dict:
        """Register a new model with no versions; RegistryError if a live model has that name."""
        check_name(name)
        if not (isinstance(kind, str) and kind):
            raise RegistryError(f"model kind must be a non-empty string, got {kind!r}")
        if not isinstance(params, dict):
            raise RegistryError(f"params must be a dict, got {type(params).__name__}")
        if schedule_problem({"every_days": every_days, "active": active}, "schedule"):
            raise RegistryError(f"every_days must be a positive integer and active true or false,"
                                f" got every_days={every_days!r}, active={active!r}")
        record = {"name": name, "kind": kind, "params": plain(params), "created": utc_now(),
                  "schedule": {"every_days": every_days, "active": active,
                               "retrain": parse_retrain(retrain or DEFAULT_RETRAIN)},
                  "versions": [], "current_version": None}
        return self.update(lambda data: _insert_model(data, record))

    def set_active(self, name: str, active: bool) -> dict:
        """Pause (False) or resume (True) a model's scheduled training; returns the model."""
        if not isinstance(active, bool):
            raise RegistryError(f"active must be True or False, got {active!r}")

        def change(data: dict) -> dict:
            """Flip the flag inside the locked update."""
            model = find_model(data, name)
            model["schedule"]["active"] = active
            return model
        return self.update(change)

    def set_retrain(self, name: str, policies: list[str]) -> dict:
        """Change a model's retraining policies; returns the model."""
        policies = parse_retrain(policies)

        def change(data: dict) -> dict:
            """Set the policies inside the locked update."""
            model = find_model(data, name)
            model["schedule"]["retrain"] = policies
            return model
        return self.update(change)

    def add_version(self, name: str, version: dict, *, activate: bool = False, manual: bool = False,
                    make_current: bool = True) -> str:
        """Append a version and return its id; by default it becomes current (the old one retired).

        ``make_current=False`` adds it beside the current version, which stays: the version's
        ``status`` then says why (``rejected`` by the gate). ``activate`` resumes a paused model in
        the same update (a manual training of a paused model); ``manual`` stamps
        ``last_manual_train``. If ``version`` carries an ``id`` (the caller picked its artifact
        folder from next_version_id) it must still be the next one.
        """
        status = "current" if make_current else version.get("status")
        if status not in STORED_STATUSES or (status == "current") != make_current:
            raise RegistryError(f"a version added with make_current={make_current} needs status"
                                f" {'current' if make_current else 'rejected or retired'}, got {status!r}")
        record = plain({"id": None, "trained_at": utc_now(), "metrics": {}, "artifact_kept": True,
                        **version, "status": status})
        return self.update(lambda data: _append_version(data, name, record, activate, manual))

    def set_current(self, name: str, version_id: str) -> str | None:
        """Make the kept version ``version_id`` current (the old one retired); returns the old id.

        For a rollback or the promotion of a given version: the version keeps its ``previous``,
        so rolling back again goes further back instead of back and forth.
        """
        def change(data: dict) -> str | None:
            """Swap the current version inside the locked update."""
            model = find_model(data, name)
            target = find_version(model, version_id)
            if not target["artifact_kept"]:
                raise RegistryError(f"{name} {version_id}'s artifact was removed by retention (the last"
                                    " versions of each model are kept); pick a version whose artifact is kept")
            old = current_version(model)
            if old is not None:
                old["status"] = "retired"
            target["status"] = "current"
            model["current_version"] = version_id
            return old and old["id"]
        return self.update(change)

    def mark_artifacts_removed(self, name: str, version_ids: list[str]) -> list[str]:
        """Record that retention is removing these versions' artifacts (never the current one's)."""
        def change(data: dict) -> list[str]:
            """Flag the versions inside the locked update."""
            model = find_model(data, name)
            if model.get("current_version") in version_ids:
                raise RegistryError(f"refused to remove the artifact of {name}'s current version"
                                    f" {model['current_version']}; nothing was changed")
            for vid in version_ids:
                version = find_version(model, vid)
                version["artifact_kept"], version["status"] = False, "retired"
            return version_ids
        return self.update(change)

    def remove_model(self, name: str) -> dict:
        """Move a model to the tombstones and return its record; the caller removes its artifacts."""
        def change(data: dict) -> dict:
            """Swap the model for a tombstone inside the locked update."""
            model = find_model(data, name)
            del data["models"][name]
            stone = {"name": name, "kind": model["kind"], "created": model["created"],
                     "deleted_at": utc_now(), "versions": len(model["versions"])}
            data["deleted"].setdefault(name, []).append(stone)
            return model
        return self.update(change)


def _insert_model(data: dict, record: dict) -> dict:
    """Add a model record to registry ``data``; RegistryError if the name is live already."""
    name = record["name"]
    if name in data["models"]:
        raise RegistryError(f"a model named {name!r} already exists (kind"
                            f" {data['models'][name]['kind']!r}); pick another name or delete it first")
    data["models"][name] = record
    return record


def _append_version(data: dict, name: str, record: dict, activate: bool, manual: bool) -> str:
    """Give ``record`` the model's next id and append it, made current if its status says so (inside update)."""
    model = find_model(data, name)
    vid = next_id(model)
    if record["id"] is None:
        record["id"] = vid
    elif record["id"] != vid:
        raise RegistryError(
            f"model {name!r}: the new version was prepared as {record['id']!r}, but the next id is"
            f" {vid!r} (another training registered a version meanwhile); train again to register it")
    if problem := version_problem(record, f"the new version of {name!r}"):
        raise RegistryError(f"refused version record: {problem}")
    if record["status"] == "current":
        old = current_version(model)
        if old is not None:
            old["status"] = "retired"
        record["previous"] = old and old["id"]
        model["current_version"] = vid
    model["versions"].append(record)
    if activate:
        model["schedule"]["active"] = True
    if manual:
        model["last_manual_train"] = record["trained_at"]
    return vid
