"""A work order's deadlines, in working days: the holiday calendar and the hall's rule set,
both data (gateway/holidays/, gateway/rulesets/), and what follows from them for one order
at one moment: its due times, its card (warning, then red), its escalation.

A deadline of N days is the end (24:00, hall time) of the Nth day, working or calendar as
the rule says, after the day the bad review arrived: a review on Friday afternoon with 3
working days to contact is due at the end of Wednesday. A warning stands from the start
of a deadline's last day, a red card once it has passed unmet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .errors import ConfigError

HOLIDAYS = Path(__file__).parent / "holidays" / "cn.json"
RULESET_DIR = Path(__file__).parent / "rulesets"
STAFF_REASONS = {"attitude"}  # a complaint about the staff member (seed 003 art. 25)


def _days(data: dict, key: str, where: str) -> set[date]:
    try:
        return {date.fromisoformat(d) for d in data.get(key, [])}
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {key} must be a list of days (YYYY-MM-DD): {e}") from None


class Calendar:
    """Monday to Friday are working days, except public holidays; some weekend days are
    worked in their place (调休)."""

    def __init__(self, holidays: set[date] = frozenset(), workdays: set[date] = frozenset()):  # type: ignore[assignment]
        self.holidays = set(holidays)
        self.workdays = set(workdays)
        self._after: dict[tuple[date, int], date] = {}

    @classmethod
    def load(cls, home: Path | None = None) -> Calendar:
        """The shipped calendar, and the hall's own days (home/holidays.json) added to it."""
        cal = cls()
        for path in (HOLIDAYS, home / "holidays.json" if home else None):
            if path is None or not path.exists():
                continue
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise ConfigError(f"{path} is not JSON: {e}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path} must hold an object with holidays and workdays")
            cal.holidays |= _days(data, "holidays", str(path))
            cal.workdays |= _days(data, "workdays", str(path))
        if cal.holidays & cal.workdays:
            raise ConfigError(f"days both holiday and working day: {sorted(map(str, cal.holidays & cal.workdays))}")
        return cal

    def years(self) -> set[int]:
        return {d.year for d in self.holidays}

    def working(self, d: date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays

    def after(self, start: date, n: int, working: bool = True) -> date:
        """The nth (working) day after start (kept: a console shows thousands of orders'
        deadlines, which fall on a few hundred days)."""
        if not working:
            return start + timedelta(days=n)
        key = (start, n)
        if key not in self._after:
            if len(self._after) > 100_000:
                self._after.clear()
            self._after[key] = self._count(start, n)
        return self._after[key]

    def _count(self, start: date, n: int) -> date:
        d = start
        while n > 0:
            d += timedelta(days=1)
            n -= self.working(d)
        return d


@dataclass(frozen=True)
class Deadline:
    days: int
    working: bool = True

    @classmethod
    def parse(cls, data, where: str) -> Deadline:
        if not (isinstance(data, dict) and isinstance(data.get("days"), int) and 0 < data["days"] <= 365
                and isinstance(data.get("working", True), bool)):
            raise ConfigError(f"{where} must be {{\"days\": 1-365, \"working\": true|false}}")
        return cls(data["days"], data.get("working", True))


@dataclass(frozen=True)
class RuleSet:
    name: str
    title: str
    contact: Deadline
    fix: Deadline
    contact_staff: Deadline | None = None  # contact, when the review is about the staff member
    fix_complex: Deadline | None = None  # fix, for a case an admin marked complex
    escalate: tuple[tuple[Deadline, str], ...] = ()  # after so many days unfinished: to whom

    @classmethod
    def load(cls, name_or_path: str) -> RuleSet:
        path = Path(name_or_path)
        if not path.suffix:
            path = RULESET_DIR / f"{name_or_path}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            known = sorted(p.stem for p in RULESET_DIR.glob("*.json"))
            raise ConfigError(f"no work-order rule set {name_or_path!r}: known are {', '.join(known)}, "
                              f"or give a path to one") from None
        except ValueError as e:
            raise ConfigError(f"rule set {path} is not JSON: {e}") from None
        w = f"rule set {path}"
        opt = {k: Deadline.parse(data[k], f"{w}: {k}") for k in ("contact_staff", "fix_complex") if k in data}
        esc = data.get("escalate", [])
        if not isinstance(esc, list) or not all(isinstance(e, dict) and isinstance(e.get("to"), str) for e in esc):
            raise ConfigError(f"{w}: escalate must be a list of {{days, working, to}}")
        return cls(str(data.get("name", path.stem)), str(data.get("title", "")),
                   Deadline.parse(data.get("contact"), f"{w}: contact"), Deadline.parse(data.get("fix"), f"{w}: fix"),
                   escalate=tuple((Deadline.parse(e, f"{w}: escalate"), e["to"]) for e in esc), **opt)


DONE = ("closed", "invalid")


class Clock:
    """The rule set and calendar of a hall, in its time zone."""

    def __init__(self, rules: RuleSet, calendar: Calendar, tz: str):
        self.rules = rules
        self.calendar = calendar
        self.zone = ZoneInfo(tz)
        self._due: dict[tuple[date, Deadline], float] = {}

    def due(self, opened_at: float, d: Deadline) -> float:
        day = datetime.fromtimestamp(opened_at, self.zone).date()
        key = (day, d)
        if key not in self._due:  # orders opened on the same day share their deadlines
            if len(self._due) > 100_000:
                self._due.clear()
            end = self.calendar.after(day, d.days, d.working) + timedelta(days=1)
            self._due[key] = datetime(end.year, end.month, end.day, tzinfo=self.zone).timestamp()
        return self._due[key]

    def timeline(self, o: dict, now: float) -> dict:
        """An order's deadlines and what they say at `now`. o: its row (opened_at,
        reason, complex, state, contacted_at, closed_at)."""
        r = self.rules
        about_staff = bool(STAFF_REASONS & set((o["reason"] or "").split(",")))
        contact = r.contact_staff if about_staff and r.contact_staff else r.contact
        fix = r.fix_complex if o["complex"] and r.fix_complex else r.fix
        finished = o["closed_at"] if o["state"] in DONE else None
        out: dict = {"deadlines": {}, "card": None, "escalation": None}
        for name, d, done in (("contact", contact, o["contacted_at"] or finished), ("fix", fix, finished)):
            due = self.due(o["opened_at"], d)
            last_day = due - 86400  # the start of the deadline's last day (DST-free zones: China has none)
            card = None
            if done is None:
                card = "red" if now >= due else "warning" if now >= last_day else None
            out["deadlines"][name] = {"due": due, "met": None if done is None else done <= due, "card": card}
            if card == "red" or (card == "warning" and out["card"] is None):
                out["card"] = card
        if finished is None:
            for d, to in r.escalate:
                if now >= self.due(o["opened_at"], d):
                    out["escalation"] = to
        return out
