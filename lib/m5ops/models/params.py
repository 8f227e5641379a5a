"""Parameter schemas of model kinds: declared once, validated everywhere, described for forms.

A kind declares its parameters as ``Param`` rows of a ``ParamSchema``. ``validate`` is the one
gate a parameter passes before it reaches a model, a registry entry or a notebook: it fills
defaults, turns CLI strings (``--param learning_rate=0.05``) into the declared type and refuses
anything else with a ``ParameterError`` that says what is allowed. ``describe`` gives the
dashboard what it needs to build one widget per parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from m5ops.errors import ParameterError

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class Param:
    """One parameter: its name, type, default, and the range or choices it may take."""

    name: str
    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    help: str = ""

    def __post_init__(self):
        """Refuse a declaration that could never validate its own default (a bug in a kind)."""
        if self.type not in _TYPES.values():
            raise TypeError(f"Param {self.name!r}: type must be int, float, str or bool")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        self.check(self.default)

    def check(self, value: Any) -> Any:
        """The value coerced to this parameter's type; a ParameterError if it is not allowed."""
        value = self._coerce(value)
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} is out of range; allowed: {self._allowed()}"
            )
        if self.choices is not None and value not in self.choices:
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} is not one of {list(self.choices)}"
            )
        return value

    def _coerce(self, value: Any) -> Any:
        """Convert a CLI string or a compatible number to the declared type, else refuse."""
        try:
            converted = _CONVERTERS[self.type](value)
        except (TypeError, ValueError):
            converted = None
        if converted is None:
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} is not {_article(self.type)}; "
                f"allowed: {self._allowed()}"
            )
        return converted

    def _allowed(self) -> str:
        """What the parameter accepts, in words, for error messages."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return "any string"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{_article(self.type)} in [{low}, {high}]"

    def describe(self) -> dict:
        """A plain dict for form generation and JSON (type as its name)."""
        return {
            "name": self.name, "type": self.type.__name__, "default": self.default,
            "low": self.low, "high": self.high,
            "choices": None if self.choices is None else list(self.choices), "help": self.help,
        }


class ParamSchema:
    """The ordered parameters of one model kind."""

    def __init__(self, params: list[Param]):
        names = [p.name for p in params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"ParamSchema declares {duplicates} more than once")
        self.params = {p.name: p for p in params}

    def __iter__(self):
        return iter(self.params.values())

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def names(self) -> list[str]:
        """Parameter names in declaration order."""
        return list(self.params)

    def defaults(self) -> dict:
        """Every parameter at its default."""
        return {name: p.default for name, p in self.params.items()}

    def validate(self, raw: dict | None) -> dict:
        """Every parameter, typed and in range: ``raw`` over the defaults; refuses unknown keys."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "(this kind takes no parameters)"
            raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {known}")
        # Collect every problem so one round trip through a form or the CLI fixes them all.
        values, problems = {}, []
        for name, param in self.params.items():
            try:
                values[name] = param.check(raw.get(name, param.default))
            except ParameterError as exc:
                problems.append(str(exc))
        if problems:
            raise ParameterError("; ".join(problems))
        return values

    def describe(self) -> list[dict]:
        """One dict per parameter (name, type, default, low, high, choices, help)."""
        return [p.describe() for p in self.params.values()]


def _to_bool(value: Any) -> bool | None:
    """True/False from a bool or a word like 'true', 'no', '1'; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _to_int(value: Any) -> int | None:
    """An int from an int, an integral float (JSON may give 800.0) or a string like '800'."""
    if isinstance(value, bool):
        return None  # True is an int to Python, never a count to a user
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.lstrip("+-").isdigit() else None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return int(value) if hasattr(value, "__index__") else None


def _to_float(value: Any) -> float | None:
    """A finite float from a number or a string like '0.05'; NaN/inf would pass every range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) and not hasattr(
        value, "__float__"
    ):
        return None
    result = float(value.strip() if isinstance(value, str) else value)
    return result if math.isfinite(result) else None


def _to_str(value: Any) -> str | None:
    """Strings only: a number where a name is expected is a mistake worth reporting."""
    return value if isinstance(value, str) else None


def _article(t: type) -> str:
    """'an int', 'a float', ... for messages."""
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}[t]


_CONVERTERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}
