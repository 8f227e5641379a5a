"""The shape of ``registry.json``: names, records, validation, JSON encoding, and format upgrades.

Pure functions on the registry's data; ``stores.registry`` does the file and the locking.

Format 2 (format 1 plus version statuses)::

    {"format": 2,
     "models": {name: {"name", "kind", "params", "created", "schedule": {"every_days", "active", "retrain"},
                       "versions": [{"id", "trained_at", "sim_date", "sim_day", "cutoff_day",
                                     "rows", "duration_s", "artifact", "status", "artifact_kept",
                                     "previous" (optional), "metrics", "lineage" (optional),
                                     "gate" (optional)}],
                       "current_version", "last_manual_train" (optional)}},
     "deleted": {name: [{"name", "kind", "created", "deleted_at", "versions"}]}}

A version's stored ``status`` is ``current`` (the model's current version, exactly one while the
model has a version), ``rejected`` (the gate refused it) or ``retired`` (current once, or its
artifact removed by retention). ``serving`` is the fourth status a user sees: the current version
of the model in production; production is recorded in ``runs.db`` (``stores.serving``), so it is
derived when shown and never stored here, and the two files can never disagree about it.
``artifact_kept`` says whether the version's artifact folder is still there (retention removes
old ones); ``previous`` is the version it replaced when it became current (a rollback's default).
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from m5ops.errors import RegistryError

FORMAT = 2
NAME_RULE = "[a-z0-9][a-z0-9_-]{0,62}"
RETRAIN_POLICIES = ("weekly", "on-degradation", "on-drift")
DEFAULT_RETRAIN = ["weekly"]
VERSION_STATUSES = ("serving", "current", "rejected", "retired")
STORED_STATUSES = ("current", "rejected", "retired")  # "serving" is derived, see above
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


def version_number(version_id: str) -> int:
    """``'v12'`` -> 12 (versions sort by number, v10 after v9)."""
    return int(version_id[1:])


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


def version_problem(version: Any, where: str, fmt: int = FORMAT) -> str | None:
    """Describe what is wrong with a version record, or None if it is well formed."""
    if not isinstance(version, dict):
        return f"{where} is not an object"
    if not (isinstance(version.get("id"), str) and _VERSION_ID.fullmatch(version["id"])):
        return f"{where}.id is {version.get('id')!r}; expected v1, v2, ..."
    if problem := _fields_problem(version, VERSION_FIELDS, where):
        return problem
    if fmt >= 2 and version["status"] not in STORED_STATUSES:
        return f"{where}.status is {version['status']!r}; expected one of {', '.join(STORED_STATUSES)}"
    if fmt >= 2 and not isinstance(version.get("artifact_kept"), bool):
        return f"{where}.artifact_kept is {version.get('artifact_kept')!r}; expected true or false"
    return None


def schedule_problem(schedule: dict, where: str) -> str | None:
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


def _current_problem(model: dict, where: str, fmt: int) -> str | None:
    """Whether current_version names a version, and (format 2) is the one version marked current."""
    ids = [version["id"] for version in model["versions"]]
    current = model.get("current_version")
    if current is not None and current not in ids:
        return f"{where}.current_version {current!r} is not one of its versions {ids}"
    marked = [version["id"] for version in model["versions"] if version["status"] == "current"]
    if fmt >= 2 and marked != ([current] if current else []):
        return (f"{where}: the versions marked current are {marked}, but current_version is {current!r};"
                " exactly the current version has status 'current'")
    return None


def model_problem(name: str, model: Any, where: str, fmt: int = FORMAT) -> str | None:
    """Describe what is wrong with a model record stored under ``name``, or None."""
    if not is_model_name(name):
        return f"{where}: {name!r} is not a valid model name ({NAME_RULE})"
    if not isinstance(model, dict):
        return f"{where} is not an object"
    if model.get("name") != name:
        return f"{where}.name is {model.get('name')!r}; expected {name!r}"
    problem = (_fields_problem(model, _MODEL_FIELDS, where)
               or schedule_problem(model["schedule"], f"{where}.schedule"))
    if problem:
        return problem
    for i, version in enumerate(model["versions"]):
        if problem := version_problem(version, f"{where}.versions[{i}]", fmt):
            return problem
    ids = [version["id"] for version in model["versions"]]
    if len(set(ids)) != len(ids):
        return f"{where}.versions has duplicate ids: {ids}"
    return _current_problem(model, where, fmt)


def shape_problem(data: Any, fmt: int = FORMAT) -> str | None:
    """Describe the first way ``data`` is not a registry of format ``fmt``, or None if it is one."""
    if not isinstance(data, dict):
        return f"the top level is {type(data).__name__}, expected an object"
    if data.get("format") != fmt:
        return f"'format' is {data.get('format')!r}; this m5ops reads formats 1 and {FORMAT}"
    for key in ("models", "deleted"):
        if not isinstance(data.get(key), dict):
            return f"'{key}' is missing or not an object"
    for name, model in data["models"].items():
        if problem := model_problem(name, model, f"models[{name!r}]", fmt):
            return problem
    for name, stones in data["deleted"].items():
        if not (isinstance(stones, list) and all(isinstance(stone, dict) for stone in stones)):
            return f"deleted[{name!r}] is not a list of objects"
    return None


def upgraded_from_format_1(data: dict) -> dict:
    """A valid format-1 registry as format 2: the current version ``current``, the others ``retired``.

    Format 1 never removed an artifact of a live model, so every version's artifact is kept.
    """
    for model in data["models"].values():
        for version in model["versions"]:
            version["status"] = "current" if version["id"] == model.get("current_version") else "retired"
            version.setdefault("artifact_kept", True)
    data["format"] = FORMAT
    return data


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
