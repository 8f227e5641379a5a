"""Model kinds for the tests: one that always fails, one that waits at a gate, one made bad on demand.

Loaded with ``M5OPS_PLUGINS=m5ops_test_kinds`` and this folder on ``PYTHONPATH``, so that the
notebook kernels a runner starts know them too. All forecast like the seasonal naive model
(the toggled one unless it was made bad).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from m5ops.models import register
from m5ops.models.baselines import SeasonalNaiveModel
from m5ops.models.params import Param, ParamSchema


@register
class FailingModel(SeasonalNaiveModel):
    """Every fit raises: a notebook that fails."""

    kind = "test_failing"
    description = "Test kind: every training fails."

    def _fit(self, train) -> None:
        raise RuntimeError("test_failing: this training was made to fail by the test")


@register
class GatedModel(SeasonalNaiveModel):
    """A fit that, if the file ``gate`` exists, writes ``<gate>.started`` (its pid) and waits while it exists.

    While it waits it reports being halfway, as a long fit would report its rounds.
    """

    kind = "test_gated"
    description = "Test kind: training waits while the gate file exists."
    schema = ParamSchema([Param("gate", str, "", help="path of the gate file; empty: no wait")])

    def _fit(self, train) -> None:
        if not (self.gate and Path(self.gate).exists()):
            return
        Path(f"{self.gate}.started").write_text(str(os.getpid()))
        while Path(self.gate).exists():
            self.report(0.5, "waiting at the gate")
            time.sleep(0.1)


@register
class ToggledModel(SeasonalNaiveModel):
    """Seasonal naive, or, if the file ``bad_if`` exists when it is fitted, a constant far above any sale.

    The badness is decided at fit time and saved with the version, so a test can train a good
    version, create the file, and train a bad one for the gate to reject.
    """

    kind = "test_toggled"
    description = "Test kind: seasonal naive, or a huge constant if the file bad_if exists at fit time."
    schema = ParamSchema([Param("bad_if", str, "", help="path of the file that makes the next fit bad")])
    BAD_VALUE = 1000.0

    def _fit(self, train) -> None:
        self.bad = bool(self.bad_if) and Path(self.bad_if).exists()

    def _predict(self, inp):
        if getattr(self, "bad", False):
            return np.full(len(inp.features), self.BAD_VALUE)
        return super()._predict(inp)

    def _save_artifact(self, directory: Path) -> None:
        (directory / "toggled.json").write_text(json.dumps({"bad": self.bad}))

    def _load_artifact(self, directory: Path) -> None:
        self.bad = json.loads((directory / "toggled.json").read_text())["bad"]
