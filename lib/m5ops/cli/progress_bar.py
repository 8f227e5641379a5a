"""A terminal bar that follows a run's progress in ``runs.db`` while a command waits for it."""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from m5ops.errors import M5opsError
from m5ops.stores.runs import RunStore


@contextlib.contextmanager
def terminal_bar(store: RunStore, run_id: str, description: str, interval_s: float = 0.5,
                 file=None, disable: bool | None = None) -> Iterator[None]:
    """A tqdm bar following run ``run_id``'s progress in ``runs.db`` while the block runs.

    For commands that run a task in the foreground (``m5ops train NAME``): the task reports from
    its kernel, in another process, so the bar reads what it wrote. Off when the output is not a
    terminal (``disable=None``), as in logs and tests.
    """
    bar = tqdm(total=100, desc=description, file=file, disable=disable,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}")
    stop = threading.Event()

    def show() -> None:
        run = store.get(run_id)
        if run.get("progress") is not None:
            bar.n = round(100 * run["progress"])
            bar.set_postfix_str(run.get("progress_note") or "", refresh=False)
            bar.refresh()

    def follow() -> None:
        while not stop.wait(interval_s):
            with contextlib.suppress(M5opsError):  # a busy runs.db: show it next time
                show()

    follower = threading.Thread(target=follow, name=f"progress-{run_id}", daemon=True)
    follower.start()
    try:
        with logging_redirect_tqdm([logging.getLogger("m5ops")], tqdm_class=tqdm):  # log lines above the bar
            yield
    finally:
        stop.set()
        follower.join()
        with contextlib.suppress(M5opsError):
            show()
        bar.close()
