"""Model kinds and their registry.

``get_kind("lightgbm")(**params).fit(train)`` trains any kind; ``ForecastModel.load(dir)``
reads any saved model back. A new kind is a ``ForecastModel`` subclass passed to ``register``.

Your own kinds: put them in a module that calls ``register`` at import, and name it in the
``M5OPS_PLUGINS`` environment variable (comma-separated module names, importable from
``PYTHONPATH``), e.g. ``M5OPS_PLUGINS=my_kinds``. This package imports them when it is
imported, so the CLI, the runner and the notebook kernels it starts (which inherit the
environment) all know the same kinds.
"""
from __future__ import annotations

import importlib
import os

from m5ops.errors import ParameterError
from m5ops.models.base import (
    CATEGORICALS, FEATURES, TARGET, ForecastInput, ForecastModel, TrainingSummary,
)
from m5ops.models.baselines import MovingAverageModel, SeasonalNaiveModel
from m5ops.models.hist_gb import HistGBModel
from m5ops.models.lgbm import LightGBMModel
from m5ops.models.params import Param, ParamSchema


class ModelKinds:
    """The model kinds by name (one module-level instance, ``model_kinds``)."""

    def __init__(self):
        self._kinds: dict[str, type[ForecastModel]] = {}

    def register(self, cls: type[ForecastModel]) -> type[ForecastModel]:
        """Add (or replace) a kind under ``cls.kind``; returns cls, so it works as a decorator."""
        if not (isinstance(cls, type) and issubclass(cls, ForecastModel) and cls.kind):
            raise TypeError(f"{cls!r} is not a ForecastModel subclass with a `kind` name")
        self._kinds[cls.kind] = cls
        return cls

    def get(self, name: str) -> type[ForecastModel]:
        """The class of kind ``name``; a ParameterError that lists the kinds if there is none."""
        try:
            return self._kinds[name]
        except KeyError:
            raise ParameterError(
                f"unknown model kind {name!r}; available kinds: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self._kinds)

    def describe(self) -> dict[str, dict]:
        """Per kind: its description and parameter descriptions (for the dashboard's forms)."""
        return {
            name: {"description": cls.description, "params": cls.schema.describe()}
            for name, cls in sorted(self._kinds.items())
        }


model_kinds = ModelKinds()
register = model_kinds.register
get_kind = model_kinds.get
kinds = model_kinds.names
describe_kinds = model_kinds.describe

for _cls in (LightGBMModel, HistGBModel, SeasonalNaiveModel, MovingAverageModel):
    register(_cls)


def load_plugins(names: str | None = None) -> list[str]:
    """Import the plugin modules named in ``names`` (default: ``$M5OPS_PLUGINS``); returns their names."""
    spec = os.environ.get("M5OPS_PLUGINS", "") if names is None else names
    modules = [name.strip() for name in spec.split(",") if name.strip()]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"M5OPS_PLUGINS names {module!r}, which cannot be imported ({exc}); put its"
                              " folder on PYTHONPATH or remove it from M5OPS_PLUGINS") from exc
    return modules


__all__ = [
    "CATEGORICALS", "FEATURES", "TARGET", "ForecastInput", "ForecastModel", "HistGBModel",
    "LightGBMModel", "ModelKinds", "MovingAverageModel", "Param", "ParamSchema",
    "SeasonalNaiveModel", "TrainingSummary", "describe_kinds", "get_kind", "kinds",
    "load_plugins", "model_kinds", "register",
]

load_plugins()
