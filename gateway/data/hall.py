"""What the hall's business system reports: staff sessions at each window, and each
completed case (办件), which a device shows and a rating names."""

from __future__ import annotations

import json

from ..errors import Conflict, NotFound
from . import one, rows, summaries, transaction, where


def shift_clock(db, delta: float, before: float) -> int:
    """The box's clock stepped by delta seconds: the starts of the sessions open since
    before `before` (in the old clock) said in the new clock, so that what is pressed and
    reported after the step falls inside them."""
    return db.execute("update sessions set started_at = started_at + ? where ended_at is null and started_at <= ?",
                      [delta, before]).rowcount


def session_at(db, window: str, ts: float) -> dict | None:
    """The staff session at the window at time ts. Sessions at a window follow one another;
    only a step of the clock backwards makes two cover one moment, and then the later one
    (the higher ID) is the one in the clock that runs now. Read newest first: a press is
    nearly always in the latest session, so the scan stops at once."""
    return one(db, "select * from sessions indexed by sessions_window_id where window = ? and started_at <= ? "
                   "and (ended_at is null or ended_at > ?) order by id desc limit 1", [window, ts, ts])


def open_sessions(db) -> list[dict]:
    """The sessions not ended: who is signed in where."""
    return rows(db, "select * from sessions where ended_at is null")


def sign_in(db, window: str, staff_id: str, staff_name: str, at: float) -> dict | None:
    """A staff member signs in; whoever was signed in at the window is signed out."""
    with transaction(db):
        _end_session(db, window, at)
        db.execute("insert into sessions (window, staff_id, staff_name, started_at) values (?, ?, ?, ?)",
                   [window, staff_id, staff_name, at])
    return session_at(db, window, at)


def sign_out(db, window: str, at: float) -> None:
    with transaction(db):
        if not _end_session(db, window, at):
            raise NotFound(f"nobody is signed in at window {window}")


def _end_session(db, window, at) -> int:
    return db.execute("update sessions set ended_at = ? where window = ? and ended_at is null",
                      [at, window]).rowcount


def complete_case(db, serial: str, window: str, items: list[tuple[str, str]], at: float, offset_s: int) -> dict:
    """Record a completed case. A batch case lists several items under one serial
    number and still gets one rating; the first item names the case."""
    if not items:
        raise Conflict("a case needs at least one item")
    with transaction(db):
        s = session_at(db, window, at)
        if s is None:
            raise Conflict(f"no staff signed in at window {window}")
        if case(db, serial):
            raise Conflict(f"case {serial} is already recorded")
        row = {"serial": serial, "window": window, "staff_id": s["staff_id"], "staff_name": s["staff_name"],
               "item_code": items[0][0], "item_name": items[0][1],
               "items": json.dumps([{"code": c, "name": n} for c, n in items], ensure_ascii=False),
               "completed_at": at, "rating_id": None, "session_id": s["id"]}
        db.execute(f"insert into cases ({', '.join(row)}) values ({', '.join('?' * len(row))})", list(row.values()))
        summaries.add_case(db, row, offset_s)
    return row


def case(db, serial: str) -> dict | None:
    return one(db, "select * from cases where serial = ?", [serial])


def latest_case(db, window: str) -> dict | None:
    return one(db, "select * from cases where window = ? order by completed_at desc limit 1", [window])


def current_case(db, window: str, session: dict | None) -> dict | None:
    """The case last completed at the window in this staff session, if any: a case of an
    earlier session is never current. By the order they were recorded, not their times,
    which a step of the box's clock can put out of order."""
    if not session:
        return None
    return one(db, "select * from cases where session_id = ? and window = ? order by rowid desc limit 1",
               [session["id"], window])


def mark_rated(db, serial: str, rating_id: str) -> None:
    db.execute("update cases set rating_id = ? where serial = ?", [rating_id, serial])


# -- views --------------------------------------------------------------------------
def windows(db) -> list[str]:
    """Every window with a device or a session."""
    return [r["window"] for r in rows(db, "select window from devices where state != 'retired' "
                                          "union select window from sessions order by window")]


def sessions(db, window: str | None, limit: int) -> list[dict]:
    sql, args = where(("window = ?", window))
    return rows(db, f"select * from sessions{sql} order by started_at desc limit ?", [*args, limit])


def _case_filter(window, rated, since, until) -> tuple[str, list]:
    sql, args = where(("window = ?", window), ("completed_at >= ?", since), ("completed_at < ?", until))
    if rated is not None:
        rated_sql = "rating_id is not null" if rated else "rating_id is null"
        sql = f"{sql} and {rated_sql}" if sql else f" where {rated_sql}"
    return sql, args


def cases(db, window: str | None, rated: bool | None, since: float | None, until: float | None,
          limit: int) -> list[dict]:
    sql, args = _case_filter(window, rated, since, until)
    return rows(db, f"select * from cases{sql} order by completed_at desc limit ?", [*args, limit])


# 主动评价率 per window, staff member or item: (summary tables by day and by month, the
# cases' columns, what the summaries keep it under and the name that goes with it)
SHARE_BY = {"window": ("summary_cases", "summary_cases_month", "window", None),
            "staff": ("summary_cases", "summary_cases_month", "staff_id", "staff_name"),
            "item": (None, "summary_cases_item", "item_code", "item_name")}
_SHARE_KEY = {"window": "windows", "staff": "staff", "item": "items"}


def rated_share(db, since: float | None, until: float | None, days: tuple[str | None, str | None] | None = None,
                by: str = "window", window: str | None = None) -> dict:
    """主动评价率: the share of completed cases that were rated, overall and per window,
    staff member or item (under "windows", "staff" or "items").
    days: the same bounds as hall days (until inclusive), when they are whole days: then
    the summaries answer (per item, whole months only, as the ratings' item figures)."""
    day_table, month_table, key, name = SHARE_BY[by]
    cols, pick = (f"{key}, {name}", f"{key}, max({name}) {name}") if name else (key, key)
    spans = summaries.spans(*days) if days is not None else None
    if spans is not None and (day_table or all(grain == "month" for grain, *_ in spans)):
        parts, args = [], []
        for grain, col, lo, hi in spans:
            sql, a = where(("window = ?", window), (f"{col} >= ?", lo), (f"{col} <= ?", hi))
            parts.append(f"select {cols}, cases, rated from {day_table if grain == 'day' else month_table}{sql}")
            args += a
        found = rows(db, f"select {pick}, sum(cases) cases, sum(rated) rated from ({' union all '.join(parts)}) "
                         f"group by {key} order by {key}", args)
        for r in found:
            r[key] = r[key] or None  # the summaries keep a missing staff or item as ''
    else:
        sql, args = _case_filter(window, None, since, until)
        found = rows(db, f"select {pick}, count(*) cases, count(rating_id) rated from cases{sql} group by {key} "
                         f"order by {key}", args)
    per = [{**r, "share": round(r["rated"] / r["cases"], 4)} for r in found if r["cases"]]
    total, rated = sum(r["cases"] for r in per), sum(r["rated"] for r in per)
    return {"cases": total, "rated": rated, "share": round(rated / total, 4) if total else None,
            _SHARE_KEY[by]: per}
