"""The audit log: every change made through an account, appended in the transaction of
the change itself (so that neither is kept without the other). Triggers in the schema
refuse any update or delete of it."""

from __future__ import annotations

import json

from . import rows, where


def record(db, actor: str, action: str, target: str | None, at: float, **detail) -> None:
    db.execute("insert into audit (at, actor, action, target, detail) values (?, ?, ?, ?, ?)",
               [at, actor, action, target, json.dumps(detail, ensure_ascii=False) if detail else None])


def entries(db, actor: str | None, action: str | None, since: float | None, limit: int,
            before: int | None) -> list[dict]:
    """Newest first; `before` an entry ID, to page back."""
    sql, args = where(("actor = ?", actor), ("action = ?", action), ("at >= ?", since), ("id < ?", before))
    out = rows(db, f"select * from audit{sql} order by id desc limit ?", [*args, limit])
    for r in out:
        r["detail"] = json.loads(r["detail"]) if r["detail"] else {}
    return out
