"""Model kinds for the runner's tests: one that always fails, one that waits at a gate.

Loaded with ``M5OPS_PLUGINS=m5ops_test_kinds`` and this folder on ``PYTHONPATH``, so that the
notebook kernels a runner starts know them too. Both forecast like the seasonal naive model.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

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
