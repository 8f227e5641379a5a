"""``m5ops runner --on-alert CMD``: each raised or cleared alert, as JSON on the command's stdin.

Users route alerts to mail or chat themselves. The command gets a timeout; its failure is logged
and never stops the runner.
"""
from __future__ import annotations

import json
import logging
import subprocess

log = logging.getLogger("m5ops.alerts")
HOOK_TIMEOUT_S = 30.0


def notify(command: str | None, alert: dict, timeout_s: float = HOOK_TIMEOUT_S) -> bool:
    """Run ``command`` (a shell line) with ``alert`` as JSON on stdin; whether it succeeded."""
    if not command:
        return True
    try:
        done = subprocess.run(command, shell=True, input=json.dumps(alert, default=str), text=True,
                              capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.error("alert %s: the --on-alert command ran past %g s and was stopped", alert.get("id"), timeout_s)
        return False
    except OSError as exc:
        log.error("alert %s: the --on-alert command could not start: %s", alert.get("id"), exc)
        return False
    if done.returncode != 0:
        log.error("alert %s: the --on-alert command exited %d: %s", alert.get("id"), done.returncode,
                  done.stderr.strip()[-300:])
        return False
    return True
