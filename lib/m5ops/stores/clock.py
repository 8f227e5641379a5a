"""Wall-clock stamps of every store: ISO 8601 UTC with milliseconds, which sort as text."""
from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> datetime | None:
    """A time stored by ``utc_now`` (or any ISO 8601 text) as an aware datetime; None stays None."""
    return datetime.fromisoformat(text) if text else None


def age_s(text: str, now: datetime | None = None) -> float:
    """Seconds from the stored time ``text`` to ``now`` (default: this moment)."""
    return ((now or datetime.now(timezone.utc)) - datetime.fromisoformat(text)).total_seconds()
