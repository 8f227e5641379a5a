#!/usr/bin/env python
"""The run-runner: ``python runner/run_runner.py --home WORKSPACE [--at HH:MM | --day-seconds N]``.

The same as ``m5ops runner``: a long-running process that ticks the simulated days (daily at
``--at``, or every ``--day-seconds`` in demo mode) and carries out queued requests, until
SIGINT or SIGTERM. All logic lives in ``m5ops.orchestration.runner``; ``--help`` lists options.
"""
import sys
from pathlib import Path

try:
    from m5ops.orchestration.runner import main
except ImportError:  # not installed: use the package from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from m5ops.orchestration.runner import main

if __name__ == "__main__":
    sys.exit(main())
