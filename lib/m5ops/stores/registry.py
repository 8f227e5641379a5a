"""The model registry: models, their versions and schedules, in ``workspace/registry.json``.

Storage only: model kinds and their parameters are validated elsewhere (``m5ops.models``).

Every change is a read-modify-write under ``registry.json.lock`` (``filelock``): read, validate,
apply the change, validate again, write a temp file in the same folder, fsync, ``os.replace``.
So two processes changing models at once lose nothing, and a reader that takes no lock still
sees a whole file. A malformed file is never overwritten: every write reads and validates
first, and refuses with a message naming the file and the position of the problem.

A deleted model becomes a tombstone under ``"deleted"``. Its name may be reused: the new model
starts again at ``v1`` and the tombstones keep the history of every earlier one.

Format 1::

    {"format": 1,
     "models": {name: {"name", "kind", "params", "created", "schedule": {"every_days", "active"},
                       "versions": [{"id", "trained_at", "sim_date", "sim_day", "cutoff_day",
                                     "rows", "duration_s", "artifact", "status", "metrics"}],
                       "current_version", "last_manual_train" (optional)}},
     "deleted": {name: [{"name", "kind", "created", "deleted_at", "versions"}]}}
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from m5ops.stores.atomic import write_json_atomic, write_text_atomic
from m5ops.errors import RegistryError
from m5ops.stores.clock import utc_now

FORMAT = 1
NAME_RULE = "[a-z0-9][a-z0-9_-]{0,62}"
DEFAULT_EVERY_DAYS = 7
RETRAIN_POLICIES = ("weekly", "on-degradation", "on-drift")
DEFAULT_RETRAIN = ["weekly"]
LOCK_TIMEOUT_S = 30.0
_NAME = re.compile(NAME_RULE)
_VERSION_ID = re.compile(r"v[1-9][0-9]*")
# Fields a version must carry: the schedule needs sim_day, loading needs artifact.
VERSION_FIELDS = {"sim_date": str, "sim_day": int, "cutoff_day": int, "artifact": str, "status": str}
_MODEL_FIELDS = {"kind": str, "params": dict, "created": str, "schedule": dict, "versions": list}
_TYPE_WORDS = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def is_model_name(name: Any) -> bool:
    """Whether ``name`` follows the model-name rule (a slug)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: Any) -> str:
    """Return ``name`` if it is a valid model name, else RegistryError quoting the rule."""
    if is_model_name(name):
        return name
    raise RegistryError(
        f"invalid model name {name!r}: a name must match {NAME_RULE} (lowercase letters, digits,"
        " '-' and '_', starting with a letter or digit, at most 63 characters), e.g. 'lgbm-tweedie'")


def empty_registry() -> dict:
    """The contents of a registry with no models."""
    return {"format": FORMAT, "models": {}, "deleted": {}}


def _is_type(value: Any, kind: type) -> bool:
    """isinstance, except that a bool does not count as an int."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _fields_problem(record: dict, fields: dict, where: str) -> str | None:
    """The first field of ``record`` that is missing or of the wrong type, described."""
    for key, kind in fields.items():
        if not _is_type(record.get(key), kind):
            return f"{where}.{key} is missing or not {_TYPE_WORDS[kind]}"
    return None


def version_problem(version: Any, where: str) -> str | None:
    """Describe what is wrong with a version record, or None if it is well formed."""
    if not isinstance(version, dict):
        return f"{where} is not an object"
    if not (isinstance(version.get("id"), str) and _VERSION_ID.fullmatch(version["id"])):
        return f"{where}.id is {version.get('id')!r}; expected v1, v2, ..."
    return _fields_problem(version, VERSION_FIELDS, where)


def _schedule_problem(schedule: dict, where: str) -> str | None:
    """Describe what is wrong with a model's schedule, or None."""
    every = schedule.get("every_days")
    if not _is_type(every, int) or every < 1:
        return f"{where}.every_days is {every!r}; expected a positive integer"
    if not isinstance(schedule.get("active"), bool):
        return f"{where}.active is {schedule.get('active')!r}; expected true or false"
    retrain = schedule.get("retrain", DEFAULT_RETRAIN)
    if not (isinstance(retrain, list) and retrain and all(p in RETRAIN_POLICIES for p in retrain)):
        return f"{where}.retrain is {retrain!r}; expected a non-empty list of {', '.join(RETRAIN_POLICIES)}"
    return None


def parse_retrain(text: str | list[str]) -> list[str]:
    """``weekly,on-degradation`` as a list of policies; RegistryError naming the allowed ones."""
    policies = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    unknown = [p for p in policies if p not in RETRAIN_POLICIES]
    if unknown or not policies or len(set(policies)) != len(policies):
        raise RegistryError(f"retraining policy {text!r} is not a comma-separated list of {', '.join(RETRAIN_POLICIES)}"
                            " without repeats, e.g. --retrain weekly,on-degradation")
    return policies


def retrain_policy(model: dict) -> list[str]:
    """The model's retraining policies (``weekly`` for models made before policies existed)."""
    return model["schedule"].get("retrain", DEFAULT_RETRAIN)


def model_problem(name: str, model: Any, where: str) -> str | None:
    """Describe what is wrong with a model record stored under ``name``, or None."""
    if not is_model_name(name):
        return f"{where}: {name!r} is not a valid model name ({NAME_RULE})"
    if not isinstance(model, dict):
        return f"{where} is not an object"
    if model.get("name") != name:
        return f"{where}.name is {model.get('name')!r}; expected {name!r}"
    problem = (_fields_problem(model, _MODEL_FIELDS, where)
               or _schedule_problem(model["schedule"], f"{where}.schedule"))
    if problem:
        return problem
    for i, version in enumerate(model["versions"]):
        if problem := version_problem(version, f"{where}.versions[{i}]"):
            return problem
    ids = [version["id"] for version in model["versions"]]
    if len(set(ids)) != len(ids):
        return f"{where}.versions has duplicate ids: {ids}"
    if model.get("current_version") is not None and model["current_version"] not in ids:
        return f"{where}.current_version {model['current_version']!r} is not one of its versions {ids}"
    return None


def shape_problem(data: Any) -> str | None:
    """Describe the first way ``data`` is not a format-1 registry, or None if it is one."""
    if not isinstance(data, dict):
        return f"the top level is {type(data).__name__}, expected an object"
    if data.get("format") != FORMAT:
        return f"'format' is {data.get('format')!r}; this m5ops reads format {FORMAT}"
    for key in ("models", "deleted"):
        if not isinstance(data.get(key), dict):
            return f"'{key}' is missing or not an object"
    for name, model in data["models"].items():
        if problem := model_problem(name, model, f"models[{name!r}]"):
            return problem
    for name, stones in data["deleted"].items():
        if not (isinstance(stones, list) and all(isinstance(stone, dict) for stone in stones)):
            return f"deleted[{name!r}] is not a list of objects"
    return None


def plain(obj: Any) -> Any:
    """A JSON-safe copy: numpy scalars and arrays become Python values, NaN and inf become null."""
    if isinstance(obj, dict):
        return {str(key): plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(value) for value in obj]
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # JSON has no NaN; null reads as "no value"
    if hasattr(obj, "tolist"):  # numpy scalar or array, without importing numpy
        return plain(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise RegistryError(f"cannot store a {type(obj).__name__} ({obj!r}) in the registry;"
                        " use numbers, strings, booleans, lists and dicts")


def encode(data: dict) -> tuple[str, dict]:
    """Registry data as strict, indented JSON text, together with the data as encoded."""
    try:
        return json.dumps(data, indent=2, allow_nan=False) + "\n", data
    except (TypeError, ValueError):  # numpy values or NaN somewhere: convert the tree (slower)
        data = plain(data)
        return json.dumps(data, indent=2, allow_nan=False) + "\n", data


def find_model(data: dict, name: str) -> dict:
    """The model called ``name`` in registry ``data``; RegistryError listing known models if absent."""
    model = data["models"].get(name)
    if model is not None:
        return model
    known = ", ".join(sorted(data["models"])) or "none yet"
    gone = " (a model of that name was deleted)" if name in data["deleted"] else ""
    raise RegistryError(f"no model named {name!r}{gone}; known models: {known}")


def current_version(model: dict) -> dict | None:
    """The model's current version record, or None if it has never been trained."""
    wanted = model.get("current_version")
    return next((v for v in model["versions"] if v["id"] == wanted), None)


def next_id(model: dict) -> str:
    """The id the model's next version gets: one more than the highest so far."""
    return f"v{max((int(v['id'][1:]) for v in model['versions']), default=0) + 1}"


def is_due(model: dict, sim_day: int) -> bool:
    """Whether an active model is due by the calendar: never trained, or (weekly) trained long enough ago.

    Trainings triggered by degradation or drift are ``pipeline.triggers``'s.
    """
    if not model["schedule"]["active"]:
        return False
    current = current_version(model)
    if current is None:
        return True
    return "weekly" in retrain_policy(model) and sim_day - current["sim_day"] >= model["schedule"]["every_days"]


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

    def _read(self) -> dict:
        """Load and validate the file; RegistryError naming the file and the problem."""
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise RegistryError(f"no registry at {self.path}; create the workspace first"
                                " (`m5ops init`) or call Registry.create(path)") from None
        except UnicodeDecodeError as err:
            raise self._malformed(f"is not UTF-8 text (bad byte at offset {err.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise self._malformed(
                f"is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
        if problem := shape_problem(data):
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
        if _schedule_problem({"every_days": every_days, "active": active}, "schedule"):
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

    def add_version(self, name: str, version: dict, *, activate: bool = False,
                    manual: bool = False) -> str:
        """Append a version, make it current and return its id.

        ``activate`` resumes a paused model in the same update (a manual training of a paused
        model); ``manual`` stamps ``last_manual_train``. If ``version`` carries an ``id`` (the
        caller picked its artifact folder from next_version_id) it must still be the next one.
        """
        record = plain({"id": None, "status": "ready", "trained_at": utc_now(), "metrics": {},
                        **version})
        return self.update(lambda data: _append_version(data, name, record, activate, manual))

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
    """Give ``record`` the model's next id, append it and make it current (inside update)."""
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
    model["versions"].append(record)
    model["current_version"] = vid
    if activate:
        model["schedule"]["active"] = True
    if manual:
        model["last_manual_train"] = record["trained_at"]
    return vid
