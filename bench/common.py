"""Helpers shared by the benchmarks: timing, peak memory, child processes, the big-memory lock, tables.

Keep additions here additive: several benchmark scripts import these names.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

GIB = 2**30
BIGMEM_LOCK = Path("/tmp/m5ops-bigmem.lock")
RESULT_MARK = "BENCH-RESULT "  # a child process prints its result as one JSON line after this mark


# --- timing -------------------------------------------------------------------------------

def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def median_time(fn: Callable, repeat: int, warmup: int = 1) -> dict:
    """Median, min and max wall seconds of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = [timed(fn)[0] for _ in range(repeat)]
    return summarise(times)


def summarise(times: list[float]) -> dict:
    """Median, min, max and count of a list of wall times."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


# --- memory -------------------------------------------------------------------------------

def peak_rss_bytes(pid: int | str = "self") -> int:
    """A process's peak resident memory (VmHWM) in bytes; it counts the whole process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status (not Linux?)")


def rss_bytes(pid: int | str = "self") -> int:
    """A process's current resident memory (VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status (not Linux?)")


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: ``5`` into clear_refs); False if refused.

    Lets one child report the peak of each phase separately (e.g. building a frame, then fitting).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def gib(n_bytes: float) -> float:
    """Bytes -> GiB."""
    return n_bytes / GIB


# --- child processes ------------------------------------------------------------------------

def emit_result(result: dict) -> None:
    """Print a child's result (with its own peak RSS added) for ``run_child`` to read."""
    result = {**result, "peak_rss": peak_rss_bytes()}
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_child(argv: list[str], env: dict | None = None, timeout: float | None = None) -> dict:
    """Run a Python child (``argv`` after the interpreter) and return the result it emitted.

    Each measured tool runs in its own child, so its peak RSS is its own. The child's other
    output goes to this process's stderr; a failing child raises with its exit status.
    """
    proc = subprocess.run([sys.executable, *argv], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    lines = proc.stdout.splitlines()
    results = [json.loads(line[len(RESULT_MARK):]) for line in lines if line.startswith(RESULT_MARK)]
    other = [line for line in lines if not line.startswith(RESULT_MARK)]
    if other:
        print("\n".join(other), file=sys.stderr)
    if proc.returncode != 0 or not results:
        raise RuntimeError(f"child {' '.join(argv)} failed with exit status {proc.returncode}")
    return results[-1]


# --- the big-memory lock ----------------------------------------------------------------------

def _inherited_lock(path: Path) -> bool:
    """True if this process already has ``path`` open (run under ``flock PATH cmd``, which passes its fd on)."""
    target = str(path.resolve())
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                return True
    return False


@contextlib.contextmanager
def bigmem_lock(path: Path = BIGMEM_LOCK) -> Iterator[None]:
    """Hold the machine-wide lock for runs needing more than ~3 GiB, so two never run at once.

    Waits (saying so) while another run holds it. Inside ``flock /tmp/m5ops-bigmem.lock cmd``
    the lock is already ours, and is not taken twice.
    """
    if _inherited_lock(path):
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path} (another big-memory run holds it)...", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- output -------------------------------------------------------------------------------

def print_table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> None:
    """A plain aligned text table (floats with 3 significant decimals)."""
    columns = columns or list(rows[0])
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    if title:
        print(title)
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def _cell(value) -> str:
    """One table cell as text."""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def verdict(ok: bool) -> str:
    """PASS or MISS, for a target line."""
    return "PASS" if ok else "MISS"
