"""The M5 calendar rebuilt from its rules, so that it can run past d_1969 into any year.

Rules read off the real ``calendar.csv`` (2011-01-29..2016-06-19):

- Walmart weeks run Saturday..Friday. Fiscal year ``YY`` starts on the Saturday after the last
  Friday of January of 20YY (11101 = 2011-01-29, 11201 = 2012-01-28, 11401 = 2014-02-01), so a
  year has 52 weeks, or 53 when the last Friday of January falls late (11353).
  ``wm_yr_wk = 10000 + 100 * (fiscal year - 2000) + week``: ``1YYWW`` through 2099, and still
  increasing after that (2100 -> 20001).
- ``wday`` is 1 = Saturday .. 7 = Friday.
- SNAP days are fixed days of the month per state (CA 1-10, TX and WI ten days each in 1-15).
- Events are US holidays by their legal rule, cultural days, sporting finals and religious feasts;
  at most two per day, more important types first (see ``_TYPE_ORDER``).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from m5ops.data.schema import CALENDAR_COLUMNS, day_date, day_label, day_number
from m5ops.errors import DataError

WEEKDAYS = ["Saturday", "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
SNAP_DAYS = {
    "CA": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
    "TX": (1, 3, 5, 6, 7, 9, 11, 12, 13, 15),
    "WI": (2, 3, 5, 6, 8, 9, 11, 12, 14, 15),
}
EVENT_TYPES = ("National", "Sporting", "Religious", "Cultural")
# The real file puts NBAFinalsEnd before Father's day and OrthodoxEaster before Cinco De Mayo;
# it is inconsistent on Easter vs OrthodoxEaster (2011 one way, 2014 the other).
_TYPE_ORDER = {kind: rank for rank, kind in enumerate(EVENT_TYPES)}
_MON, _THU, _FRI, _SUN = 0, 3, 4, 6
_JDN_OF_ORDINAL_ZERO = 1721425  # date.toordinal() + this = Julian day number
_HEBREW_EPOCH = -1373427  # R.D. of 1 Tishri AM 1 (Reingold & Dershowitz, Calendrical Calculations)
_ISLAMIC_EPOCH = 227015  # R.D. of 1 Muharram AH 1 (civil epoch, 16 July 622 Julian)


# --- date rules -----------------------------------------------------------------------------

def nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th given weekday (Mon=0) of a month; n = -1 is the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-n - 1))


def easter(year: int) -> dt.date:
    """Western Easter Sunday (anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    return dt.date(year, (h + l - 7 * m + 114) // 31, (h + l - 7 * m + 114) % 31 + 1)


def julian_to_date(year: int, month: int, day: int) -> dt.date:
    """The Gregorian date of a Julian-calendar date (exact, via the Julian day number)."""
    a = (14 - month) // 12
    y, m = year + 4800 - a, month + 12 * a - 3
    jdn = day + (153 * m + 2) // 5 + 365 * y + y // 4 - 32083
    return dt.date.fromordinal(jdn - _JDN_OF_ORDINAL_ZERO)


def orthodox_easter(year: int) -> dt.date:
    """Orthodox Easter Sunday (Julian computus, Meeus), as a Gregorian date."""
    a, b, c = year % 4, year % 7, year % 19
    d = (19 * c + 15) % 30
    e = (2 * a + 4 * b - d + 34) % 7
    return julian_to_date(year, (d + e + 114) // 31, (d + e + 114) % 31 + 1)


def _hebrew_elapsed_days(year: int) -> int:
    """Days from the Hebrew epoch to Rosh Hashanah before the postponement correction."""
    months = (235 * year - 234) // 19
    days = 29 * months + (12084 + 13753 * months) // 25920
    return days + 1 if (3 * (days + 1)) % 7 < 3 else days


def hebrew_new_year(year: int) -> int:
    """The ordinal (R.D.) of 1 Tishri of a Hebrew year; the arithmetic calendar is exact."""
    ny0, ny1, ny2 = (_hebrew_elapsed_days(year + k) for k in (-1, 0, 1))
    correction = 2 if ny2 - ny1 == 356 else 1 if ny1 - ny0 == 382 else 0
    return _HEBREW_EPOCH + ny1 + correction


def pesach(year: int) -> dt.date:
    """15 Nisan in the spring of a Gregorian year (Nisan..Elul always span 163 days)."""
    return dt.date.fromordinal(hebrew_new_year(year + 3761) - 163)


def chanukah(year: int) -> dt.date:
    """25 Kislev in the winter of a Gregorian year (Heshvan has 30 days in 'complete' years)."""
    new_year = hebrew_new_year(year + 3761)
    heshvan = 30 if hebrew_new_year(year + 3762) - new_year in (355, 385) else 29
    return dt.date.fromordinal(new_year + 30 + heshvan + 24)


def islamic_dates(year: int, month: int, day: int) -> list[dt.date]:
    """Every date in a Gregorian year with the given tabular Islamic month and day.

    The tabular (arithmetic) calendar approximates the sighted one: it matches the real file
    on 15 of its 16 Ramadan/Eid dates (EidAlAdha 2014 is a day late). A Gregorian year can
    hold the same Islamic date twice (e.g. Ramadan 2030), hence a list.
    """
    out = []
    for hijri in range(year - 580, year - 576):
        ordinal = (_ISLAMIC_EPOCH - 1 + (hijri - 1) * 354 + (3 + 11 * hijri) // 30
                   + 29 * (month - 1) + month // 2 + day)
        date = dt.date.fromordinal(ordinal)
        if date.year == year:
            out.append(date)
    return out


def super_bowl(year: int) -> dt.date:
    """First Sunday of February through 2021; second Sunday since the 17-game season (2022)."""
    return nth_weekday(year, 2, _SUN, 1 if year <= 2021 else 2)


def nba_finals_start(year: int) -> dt.date:
    """First Thursday of June: exact for 2013-2016 (2011 and 2012 began on a Tuesday)."""
    return nth_weekday(year, 6, _THU, 1)


def nba_finals_end(year: int) -> dt.date:
    """Twelve days after the start, as in a six-game series; the true end varies with the games."""
    return nba_finals_start(year) + dt.timedelta(days=12)


def _fixed(month: int, day: int):
    """A rule for an event on the same month and day every year."""
    return lambda year: dt.date(year, month, day)


def _offset(rule, days: int):
    """A rule for an event a fixed number of days from another rule's date."""
    return lambda year: rule(year) + dt.timedelta(days=days)


# (name, type, rule year -> date or list of dates); names and types spelled as in calendar.csv.
EVENTS = [
    ("NewYear", "National", _fixed(1, 1)),
    ("OrthodoxChristmas", "Religious", lambda y: julian_to_date(y - 1, 12, 25)),
    ("MartinLutherKingDay", "National", lambda y: nth_weekday(y, 1, _MON, 3)),
    ("SuperBowl", "Sporting", super_bowl),
    ("ValentinesDay", "Cultural", _fixed(2, 14)),
    ("PresidentsDay", "National", lambda y: nth_weekday(y, 2, _MON, 3)),
    ("LentStart", "Religious", _offset(easter, -46)),
    ("LentWeek2", "Religious", _offset(easter, -39)),
    ("StPatricksDay", "Cultural", _fixed(3, 17)),
    ("Purim End", "Religious", _offset(pesach, -30)),
    ("Easter", "Cultural", easter),
    ("OrthodoxEaster", "Religious", orthodox_easter),
    ("Pesach End", "Religious", _offset(pesach, 7)),
    ("Cinco De Mayo", "Cultural", _fixed(5, 5)),
    ("Mother's day", "Cultural", lambda y: nth_weekday(y, 5, _SUN, 2)),
    ("MemorialDay", "National", lambda y: nth_weekday(y, 5, _MON, -1)),
    ("NBAFinalsStart", "Sporting", nba_finals_start),
    ("NBAFinalsEnd", "Sporting", nba_finals_end),
    ("Father's day", "Cultural", lambda y: nth_weekday(y, 6, _SUN, 3)),
    ("IndependenceDay", "National", _fixed(7, 4)),
    ("Ramadan starts", "Religious", lambda y: islamic_dates(y, 9, 1)),
    ("Eid al-Fitr", "Religious", lambda y: islamic_dates(y, 10, 1)),
    ("LaborDay", "National", lambda y: nth_weekday(y, 9, _MON, 1)),
    ("ColumbusDay", "National", lambda y: nth_weekday(y, 10, _MON, 2)),
    ("Halloween", "Cultural", _fixed(10, 31)),
    ("EidAlAdha", "Religious", lambda y: islamic_dates(y, 12, 10)),
    ("VeteransDay", "National", _fixed(11, 11)),
    ("Thanksgiving", "National", lambda y: nth_weekday(y, 11, _THU, 4)),
    ("Chanukah End", "Religious", _offset(chanukah, 7)),
    ("Christmas", "National", _fixed(12, 25)),
]


def events_of_year(year: int) -> list[tuple[dt.date, str, str]]:
    """Every (date, name, type) of the recurring events in a Gregorian year, by date."""
    out = []
    for name, kind, rule in EVENTS:
        dates = rule(year)
        for date in dates if isinstance(dates, list) else [dates]:
            out.append((date, name, kind))
    return sorted(out, key=lambda ev: (ev[0], _TYPE_ORDER[ev[2]]))


# --- the calendar table ---------------------------------------------------------------------

def fiscal_year_start(year: int) -> dt.date:
    """The Saturday after the last Friday of January: day one of Walmart week 1YY01."""
    return nth_weekday(year, 1, _FRI, -1) + dt.timedelta(days=1)


def walmart_weeks(dates: pd.DatetimeIndex) -> np.ndarray:
    """``wm_yr_wk`` of each date."""
    years = np.asarray(dates.year)
    span = range(years.min() - 1, years.max() + 1)
    starts = {y: np.datetime64(fiscal_year_start(y), "D") for y in span}
    days = dates.values.astype("datetime64[D]")
    own = np.array([starts[y] for y in years])
    prev = np.array([starts[y - 1] for y in years])
    fiscal = np.where(days >= own, years, years - 1)
    week = (days - np.where(days >= own, own, prev)).astype(int) // 7 + 1
    return 10000 + 100 * (fiscal - 2000) + week


def _event_columns(dates: pd.DatetimeIndex) -> dict[str, list]:
    """event_name_1/type_1/name_2/type_2 for each date (None where there is no event)."""
    by_date: dict[dt.date, list[tuple[str, str]]] = {}
    for year in range(dates.year.min(), dates.year.max() + 1):
        for date, name, kind in events_of_year(year):
            by_date.setdefault(date, []).append((name, kind))
    cols: dict[str, list] = {c: [] for c in CALENDAR_COLUMNS[7:11]}
    for date in dates.date:
        found = by_date.get(date, [])[:2]  # the file has two slots; a third event is dropped
        found = found + [(None, None)] * (2 - len(found))
        for k, (name, kind) in enumerate(found, start=1):
            cols[f"event_name_{k}"].append(name)
            cols[f"event_type_{k}"].append(kind)
    return cols


def build_calendar(first_day: int, last_day: int) -> pd.DataFrame:
    """The calendar rows of M5 days first_day..last_day by the rules, with an int ``day`` column."""
    if last_day < first_day:
        raise DataError(f"calendar days {first_day}..{last_day} are empty; last_day must be >= first_day")
    days = np.arange(first_day, last_day + 1, dtype=np.int64)
    dates = day_date(days)
    dom = np.asarray(dates.day)
    table = {
        "date": dates,
        "wm_yr_wk": walmart_weeks(dates).astype(np.int64),
        # strings go in as plain arrays: pandas gives them its default string dtype, as read_csv does
        "weekday": np.array(WEEKDAYS, dtype=object)[(np.asarray(dates.day_of_week) + 2) % 7],
        "wday": ((np.asarray(dates.day_of_week) + 2) % 7 + 1).astype(np.int64),
        "month": np.asarray(dates.month, dtype=np.int64),
        "year": np.asarray(dates.year, dtype=np.int64),
        "d": [day_label(d) for d in days],
        **_event_columns(dates),
        **{f"snap_{s}": np.isin(dom, SNAP_DAYS[s]).astype(np.int64) for s in SNAP_DAYS},
        "day": days,
    }
    return pd.DataFrame(table)


def _with_day(base: pd.DataFrame) -> pd.DataFrame:
    """The base calendar with its ``day`` column (derived from ``d`` when missing), checked."""
    if "day" not in base.columns:
        base = base.assign(day=np.array([day_number(d) for d in base["d"]], dtype=np.int64))
    if len(base) == 0 or not (np.diff(base["day"].to_numpy()) == 1).all():
        raise DataError("the base calendar must hold consecutive days in order; sort it by day first")
    return base


def extend_calendar(base: pd.DataFrame, through_day: int) -> pd.DataFrame:
    """The base calendar as it is, continued by the rules through ``through_day``."""
    base = _with_day(base).reset_index(drop=True)
    last = int(base["day"].iloc[-1])
    if through_day <= last:
        return base.copy()
    tail = build_calendar(last + 1, through_day)
    # Match the base's dtypes (e.g. datetime64[us] from read_csv) so the join is seamless;
    # columns the rules do not know stay empty in the new rows.
    same = {c: base[c].dtype for c in tail.columns if c in base.columns and base[c].dtype.kind in "iuM"}
    tail = tail.astype(same).reindex(columns=base.columns)
    return pd.concat([base, tail], ignore_index=True)


def calendar_rows(calendar: pd.DataFrame, days) -> pd.DataFrame:
    """The rows of the given day numbers, in that order; a missing day is a DataError."""
    days = np.atleast_1d(np.asarray(days, dtype=np.int64))
    index = pd.Index(calendar["day"].to_numpy())
    pos = index.get_indexer(days)
    if (pos < 0).any():
        missing = days[pos < 0]
        raise DataError(
            f"days {missing[:5].tolist()} are not in the calendar (days {index.min()}..{index.max()}); "
            "extend it with extend_calendar"
        )
    return calendar.iloc[pos].reset_index(drop=True)
