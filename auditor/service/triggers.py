"""Schedules: a cron expression read like cron(8) reads it, or a fixed interval.

APScheduler's own CronTrigger follows the UTC offset around daylight-saving changes, which makes a daily
02:30 job run twice on the night clocks go back and skips some times in the night they go forward,
depending on the expression. `WallClockCronTrigger` gives one simple rule instead (docs/service.md):

- the expression is matched against the wall clock of the configured time zone;
- a wall-clock time that occurs twice (clocks go back) runs once, the first time;
- a wall-clock time that does not exist (clocks go forward) runs at the same distance after the change
  (02:30 runs at 03:30 when 02:00 becomes 03:00), unless that instant is already a run time.

Intervals (`every 30s`) count elapsed time and ignore the wall clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

_INTERVAL = re.compile(r"every\s+(\d+)\s*(s|m|h|d)", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STEP = timedelta(microseconds=1)
MAX_INTERVAL = timedelta(days=366)  # longer is a mistake, and past ~10^8 days Python's datetime overflows
FIRES_WITHIN = timedelta(days=5 * 366)  # a cron expression that never matches in five years never will
# cron(8)'s nicknames (@reboot has no meaning for a schedule that survives restarts)
NICKNAMES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """A schedule string that is neither a valid cron expression nor an interval."""


def time_zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (an IANA name such as \"Europe/Berlin\" or \"UTC\")") from None


def parse_schedule(text: str, zone: tzinfo) -> BaseTrigger:
    """`every 30s|15m|6h|1d` (at most 366 days), a five-field cron expression (minute hour day month
    weekday) that matches at least once in five years, or one of cron's nicknames (@hourly, @daily,
    @weekly, @monthly, @yearly)."""
    text = text.strip()
    if text.startswith("@"):
        if text.lower() not in NICKNAMES:
            raise ScheduleError(f"{text!r} is not a cron nickname (one of {', '.join(sorted(NICKNAMES))})")
        return WallClockCronTrigger(NICKNAMES[text.lower()], zone, shown=text)
    match = _INTERVAL.fullmatch(text)
    if match:
        if len(match.group(1).lstrip("0")) > 12:  # beyond any bound, and int() refuses past 4,300 digits
            raise ScheduleError(f"{text[:40]!r}: an interval may be at most {MAX_INTERVAL.days} days")
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if seconds < 1:
            raise ScheduleError(f"{text!r}: an interval must be at least one second")
        if seconds > MAX_INTERVAL.total_seconds():
            raise ScheduleError(f"{text!r}: an interval may be at most {MAX_INTERVAL.days} days")
        return IntervalTrigger(seconds=seconds, timezone=zone)
    if len(text.split()) != 5:
        raise ScheduleError(f"{text!r} is neither a five-field cron expression (minute hour day month weekday, "
                            "e.g. \"0 */6 * * *\") nor an interval (e.g. \"every 30m\")")
    trigger = WallClockCronTrigger(text, zone)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    if first is None or first - now > FIRES_WITHIN:
        raise ScheduleError(f"{text!r}: never fires: it matches no time in the next five years "
                            "(a day such as 30 February or 31 April does not exist; a day of the month and a "
                            "day of the week must both match)")
    return trigger


class WallClockCronTrigger(BaseTrigger):
    """A cron expression matched against the wall clock of `zone`, with cron(8)'s handling of DST."""

    def __init__(self, expression: str, zone: tzinfo, shown: str | None = None):
        self.expression = expression
        self.shown = shown or expression  # what the config said (a nickname), for people
        self.zone = zone
        try:
            minute, hour, day, month, weekday = expression.split()
            # Searching in UTC, a zone without DST, makes the inner trigger walk naive wall-clock time.
            self._wall = CronTrigger(minute=minute, hour=hour, day=day, month=month,
                                     day_of_week=cron_weekdays(weekday), timezone=UTC)
        except ValueError as exc:
            raise ScheduleError(f"{expression!r}: not a valid cron expression: {exc}") from None

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = previous_fire_time + _STEP if previous_fire_time else now
        # Start one hour of wall clock early: after clocks go back, `after` may sit in the repeated hour.
        cursor = _as_wall(after.astimezone(self.zone)) - timedelta(hours=1)
        for _ in range(10_000):
            wall = self._wall.get_next_fire_time(None, cursor)
            if wall is None:
                return None
            instant = self._instant(wall.replace(tzinfo=None))
            if instant >= after:
                return instant
            cursor = wall + _STEP
        return None

    def _instant(self, wall: datetime) -> datetime:
        """The instant a wall-clock time names: the first of two in a repeat; after the change in a gap."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        if _as_wall(first.astimezone(UTC).astimezone(self.zone)).replace(tzinfo=None) != wall:
            # A gap: fold=0 reads the time with the offset from before the change, which lands the same
            # distance after it.
            return first.astimezone(UTC).astimezone(self.zone)
        return first

    def __str__(self) -> str:
        return f"cron[{self.expression}, {self.zone}]"

    def __repr__(self) -> str:
        return f"<WallClockCronTrigger {self.expression!r} {self.zone}>"

    def __getstate__(self):
        return {"version": 1, "expression": self.expression, "zone": str(self.zone)}

    def __setstate__(self, state):
        self.__init__(state["expression"], ZoneInfo(state["zone"]))


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_weekdays(field: str) -> str:
    """crontab's day-of-week field (0 or 7 is Sunday, 1 Monday ...) in APScheduler's terms, where 0 is
    Monday: an explicit list of day names, so that `1-5` keeps meaning Monday to Friday."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, slash, step_text = part.partition("/")
        if slash and not step_text.isdigit() or step_text == "0":
            raise ValueError(f"day-of-week step {step_text!r} in {field!r} must be a whole number from 1")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            first_text, dash, last_text = span.partition("-")
            first = _weekday_number(first_text, field)
            last = _weekday_number(last_text, field) if dash else (7 if slash else first)
        if first > last:
            raise ValueError(f"day-of-week range {span!r} in {field!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))  # 7 is Sunday again
    return ",".join(_WEEKDAY_NAMES[d] for d in sorted(days))


def _weekday_number(text: str, field: str) -> int:
    if text in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise ValueError(f"day of week {text!r} in {field!r} is neither 0-7 nor a day name (sun, mon, ...)")


def _as_wall(moment: datetime) -> datetime:
    """The wall-clock reading of an aware datetime, as an aware UTC datetime (for the inner trigger)."""
    return moment.replace(tzinfo=UTC, fold=0)


def describe(trigger: BaseTrigger) -> str:
    if isinstance(trigger, IntervalTrigger):
        return f"every {int(trigger.interval.total_seconds())}s"
    return str(trigger)
