"""The gateway's judgements about one verified rating, apart from any storage: when the
citizen pressed (and how sure we are), and which window, staff member and case it is
about. protocol.md sections 6 and 8 state them; tests/unit checks them one by one."""

from __future__ import annotations

from .protocol import Rating

CLOCK_FUTURE_S = 300  # a synced clock this far ahead of arrival is wrong
CLOCK_PAST_S = 7 * 86400  # a synced clock this far behind, with nothing to back it, is doubted
CLOCK_AGREE_S = 300  # how far a synced clock may stray from the same boot's sync record


def rating_time(r: Rating, d: dict, received_at: float) -> tuple[float, str]:
    """When the citizen pressed, and how sure we are: 'device' (the device's synced
    clock), 'corrected' (an unsynced clock placed by the sync record of the same boot),
    'arrival' (no way to tell; flagged) or 'suspect' (a synced clock that cannot be right:
    in the future, before the device was registered, at odds with its own uptime since
    the boot's sync, or long past with nothing to back it). d: the device's row."""
    same_boot = d.get("sync_boot") == r.boot and d.get("sync_at") is not None
    corrected = d["sync_at"] + (r.up - d["sync_up"]) / 1000 if same_boot else None
    if corrected is not None and not ((d.get("created_at") or 0) - CLOCK_FUTURE_S <= corrected
                                      <= received_at + CLOCK_FUTURE_S):
        corrected = None  # a record that puts the press before the device existed, or ahead, is no record
    if r.tsync:
        ts = r.ts / 1000
        if corrected is not None:
            if abs(ts - corrected) > CLOCK_AGREE_S:
                return min(corrected, received_at), "suspect"
        elif ts < received_at - CLOCK_PAST_S:
            return received_at, "suspect"
        if ts > received_at + CLOCK_FUTURE_S or ts < (d.get("created_at") or 0) - CLOCK_FUTURE_S:
            return received_at, "suspect"
        return ts, "device"
    if corrected is not None:
        return corrected, "corrected"
    return received_at, "arrival"


def tags(r: Rating, window: str, case: dict | None, session: dict | None) -> dict:
    """Window, staff, case and item for a rating made at `window`: from the case the
    device showed (`case`, the stored case it names, if any), else from `session`, the
    staff session active at the window when the citizen pressed. A case completed at
    another window is never the device's to rate: the rating is held, the case untouched.
    A second rating of a case is a repeat, kept but not forwarded."""
    if case and case["window"] == window:
        repeat = case["rating_id"] if case["rating_id"] and case["rating_id"] != r.id else None
        return {"window": window, "staff_id": case["staff_id"], "staff_name": case["staff_name"],
                "item_code": case["item_code"], "item_name": case["item_name"], "items": case["items"],
                "tag_source": "case", "repeat_of": repeat, "held": None,
                "forward_state": "repeat" if repeat else "pending"}
    if case:
        source, held = "foreign_case", "foreign_case"
    else:
        source, held = ("unknown_case" if r.case else "session") if session else "none", None
    return {"window": window, "staff_id": session and session["staff_id"],
            "staff_name": session and session["staff_name"], "item_code": None, "item_name": None, "items": None,
            "tag_source": source, "repeat_of": None, "held": held, "forward_state": "held" if held else "pending"}
