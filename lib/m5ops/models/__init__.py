"""Model kinds and their registry.

``get_kind("lightgbm")(**params).fit(train)`` trains any kind; ``ForecastModel.load(dir)``
reads any saved model back. A new kind is a ``ForecastModel`` subclass passed to ``register``.
"""
from __future__ import annotations

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

__all__ = [
    "CATEGORICALS", "FEATURES", "TARGET", "ForecastInput", "ForecastModel", "HistGBModel",
    "LightGBMModel", "ModelKinds", "MovingAverageModel", "Param", "ParamSchema",
    "SeasonalNaiveModel", "TrainingSummary", "describe_kinds", "get_kind", "kinds",
    "model_kinds", "register",
]
