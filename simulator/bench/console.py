"""`pingjia bench console`: every console page's API calls, timed on a hall with years of
ratings (10 million by default: 100 windows, about 200 ratings a window a day, two years),
and a press's way to the screen of a real browser.

The ratings, their cases and their work orders are written straight into the gateway's
database (as the gateway would have stored them; a rating is not re-verified here), the
summaries built by the gateway's own code, and then a real hall starts on it: Mosquitto,
the gateway, the platform stand-in and two real-firmware devices. Each page's calls are
made as the page makes them, --repeats times; its time is their sum. The baseline is the
API's health probe, timed the same way: the floor of a round trip.
press_to_screen: from a press on a real-firmware device to the change on the hall page in
headless Chromium (Debian's), a MutationObserver in the page stamping it.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from gateway.auth import account_token
from gateway.data import open_db, summaries, transaction
from gateway.protocol import BAD_LEVELS, LEVELS, REASONS

from .. import say
from ..harness import Hall
from ..load import percentile

LEVEL_WEIGHTS = {"very_satisfied": 70, "satisfied": 18, "basically_satisfied": 7, "dissatisfied": 3,
                 "very_dissatisfied": 2}
CHUNK = 200_000


def fill(db, n: int, windows: int, days: int, offset_s: int, rng: random.Random) -> dict:
    """n ratings over the last `days` days, each with its case, and a work order for
    each bad review (closed, but for the last week's)."""
    levels, weights = list(LEVEL_WEIGHTS), list(LEVEL_WEIGHTS.values())
    reasons = [r for r in REASONS if r != "none"]
    first = time.time() - days * 86400
    step = days * 86400 / n
    now = time.time()
    t0 = time.monotonic()
    rating_cols = ("id", "dev", "seq", "level", "score", "reason", "case_no", "window", "staff_id", "staff_name",
                   "item_code", "item_name", "tag_source", "device_ts", "tsync", "boot", "up", "fw", "sig",
                   "received_at", "rated_at", "clock", "forward_state", "forwarded_at", "attempts", "next_attempt_at")
    case_cols = ("serial", "window", "staff_id", "staff_name", "item_code", "item_name", "items", "completed_at",
                 "rating_id")
    order_cols = ("rating_id", "window", "staff_id", "staff_name", "case_no", "item_code", "item_name", "level",
                  "reason", "opened_at", "state", "contacted_at", "closed_at", "updated_at")
    orders = 0
    for start in range(0, n, CHUNK):
        rs, cs, os_ = [], [], []
        for i in range(start, min(n, start + CHUNK)):
            w = i % windows
            t = first + i * step
            hour_shift = (rng.random() - 0.5) * 3600 * 8  # a working day's spread
            t = min(now - 60, t + hour_shift)
            win, staff = f"W{w + 1:03d}", f"S{w + 1:03d}{i % 2}"
            level = rng.choices(levels, weights)[0]
            reason = ",".join(rng.sample(reasons, 1)) if level in BAD_LEVELS else ""
            rid, serial = f"gen-{w:03d}:{i}", f"C{i:09d}"
            item = f"I{w:03d}{i % 20:02d}"
            rs.append((rid, f"gen-{w:03d}", i, level, LEVELS[level][1], reason, serial, win, staff, f"员工{staff}",
                       item, f"事项{i % 20}", "case", int(t * 1000), 1, 1, 1, "gen", "0" * 64, t + 0.2, t, "device",
                       "forwarded", t + 1, 1, t))
            cs.append((serial, win, staff, f"员工{staff}", item, f"事项{i % 20}", "[]", t - 30, rid))
            if level in BAD_LEVELS:
                open_ = t > now - 7 * 86400
                os_.append((rid, win, staff, f"员工{staff}", serial, item, f"事项{i % 20}", level, reason, t + 0.2,
                            "open" if open_ else "closed", None if open_ else t + 3600,
                            None if open_ else t + 86400, t + 0.2))
        with transaction(db):
            db.conn.executemany(f"insert into ratings ({', '.join(rating_cols)}) values "
                                f"({', '.join('?' * len(rating_cols))})", rs)
            db.conn.executemany(f"insert into cases ({', '.join(case_cols)}) values "
                                f"({', '.join('?' * len(case_cols))})", cs)
            db.conn.executemany(f"insert into work_orders ({', '.join(order_cols)}) values "
                                f"({', '.join('?' * len(order_cols))})", os_)
        orders += len(os_)
        say(f"  {min(n, start + CHUNK):,} ratings written ({time.monotonic() - t0:.0f} s)")
    t1 = time.monotonic()
    summaries.ensure(db, offset_s)
    return {"fill_s": round(t1 - t0, 1), "summaries_s": round(time.monotonic() - t1, 1), "work_orders": orders}


def _pages(month: str, since: str, until: str) -> dict[str, list[str]]:
    """Each page's API calls, as the console makes them."""
    q = f"since={since}&until={until}"
    m_since, m_until = f"{month}-01", _month_end(month)
    rq = f"window=W001&since={m_since}&until={m_until}"
    return {
        "hall": ["/api/v1/hall/now"],
        "reviews": ["/api/v1/work-orders?limit=100&newest_first=true", "/api/v1/work-orders/summary"],
        # as the page opens: the last 30 days, by day
        "stats": [f"/api/v1/stats?{q}", f"/api/v1/stats?by=window&{q}", f"/api/v1/stats?by=staff&{q}",
                  f"/api/v1/stats?by=item&since={since[:8]}01&until={_month_end(until[:7])}",
                  f"/api/v1/stats/trend?bucket=day&{q}",
                  f"/api/v1/stats/heatmap?since={since[:7]}&until={until[:7]}", f"/api/v1/stats/reasons?{q}",
                  f"/api/v1/cases/rated-share?{q}", f"/api/v1/cases/rated-share?by=staff&{q}",
                  f"/api/v1/cases/rated-share?by=item&since={since[:8]}01&until={_month_end(until[:7])}"],
        # all of it, by month
        "stats_all": ["/api/v1/stats", "/api/v1/stats?by=window", "/api/v1/stats?by=staff", "/api/v1/stats?by=item",
                      "/api/v1/stats/trend?bucket=month", "/api/v1/stats/heatmap", "/api/v1/stats/reasons",
                      "/api/v1/cases/rated-share", "/api/v1/cases/rated-share?by=staff",
                      "/api/v1/cases/rated-share?by=item"],
        "report": [f"/api/v1/stats?{rq}", f"/api/v1/stats?by=staff&{rq}", f"/api/v1/stats/trend?bucket=day&{rq}",
                   f"/api/v1/stats/reasons?{rq}", f"/api/v1/cases/rated-share?by=staff&{rq}",
                   f"/api/v1/work-orders/summary?{rq}", f"/api/v1/work-orders?limit=1000&{rq}"],
        "devices": ["/api/v1/devices"],
        "forwarder": ["/api/v1/forwarder"],
        "rejections": ["/api/v1/rejections"],
        "audit": ["/api/v1/audit"],
        "ratings_list": ["/api/v1/ratings?window=W001&limit=100"],
    }


def _month_end(month: str) -> str:
    y, m = map(int, month.split("-"))
    return (date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)).isoformat()


def _time_pages(hall: Hall, repeats: int) -> tuple[dict, float]:
    today = date.fromtimestamp(time.time() + hall.cfg.utc_offset_s - time.localtime().tm_gmtoff)
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    pages = _pages(last_month, (today - timedelta(days=30)).isoformat(), today.isoformat())
    api = hall.api
    times: dict[str, list[float]] = {p: [] for p in pages}
    health: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        api.get("/api/v1/health").raise_for_status()
        health.append(time.perf_counter() - t)
        for page, calls in pages.items():
            t = time.perf_counter()
            for path in calls:
                api.get(path).raise_for_status()
            times[page].append(time.perf_counter() - t)
    p95 = {p: round(percentile(v, 95) * 1000, 1) for p, v in times.items()}
    return p95, round(percentile(health, 95) * 1000, 2)


def _press_to_screen(hall: Hall, presses: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    password = "bench console password"
    hall.api.post("/api/v1/users", json={"name": "bench", "role": "admin", "password": password}).raise_for_status()
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{hall.cfg.api_url}/console/")
        page.fill("input[name=user]", "bench")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-window=W01]")
        # stamp each new text of the window's last-press line, in the page's own clock (this
        # machine's); a re-render that writes the same text is not a change
        page.evaluate("""() => { window.__seen = []; let last = null;
            const card = document.querySelector('[data-window=W01]');
            new MutationObserver(() => { const el = card.querySelector('.last');
                const text = el ? el.textContent : null;
                if (text && text !== last) { last = text; window.__seen.push([Date.now(), text]); } })
              .observe(card, {childList: true, characterData: true, subtree: true}); }""")
        for i in range(presses):
            hall.new_case("pj-0001")
            n = page.evaluate("() => window.__seen.length")
            pressed = hall.press("pj-0001", "satisfied" if i % 2 else "very_satisfied")
            page.wait_for_function(f"() => window.__seen.length > {n}", timeout=10_000)
            seen = page.evaluate(f"() => window.__seen[{n}][0]") / 1000
            out.append(seen - pressed["pressed_at"])
        browser.close()
    return out


def main(args) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-bench-console-"))
    rng = random.Random(args.seed)
    hall = Hall(home, devices=2, hall="bench", seed=args.seed)
    hall.home.mkdir(parents=True, exist_ok=True)
    hall.cfg.save()
    say(f"writing {args.ratings:,} ratings over {args.days} days at {args.windows} windows into {home} ...")
    db = open_db(hall.cfg.db_path)
    filled = fill(db, args.ratings, args.windows, args.days, hall.cfg.utc_offset_s, rng)
    account_token(db, "bench-audit", "viewer", "bench")  # the audit page has something to show
    db.conn.close()
    say(f"written in {filled['fill_s']} s, summaries in {filled['summaries_s']} s; starting the hall ...")
    try:
        hall.start()
        p95, health = _time_pages(hall, args.repeats)
        for page, ms in p95.items():
            say(f"  {page:<14} p95 {ms:8.1f} ms")
        seen = _press_to_screen(hall, args.presses)
        count = hall.api.get("/api/v1/stats").json()["ratings"]
    finally:
        hall.stop()
    result = {"ratings": count, "work_orders": filled["work_orders"], "page_p95_ms": p95,
              "page_p95_max_ms": max(p95.values()), "baseline_health_p95_ms": health,
              "page_p95_max_ratio": round(max(p95.values()) / health, 1) if health else None,
              "press_to_screen_p50_ms": round(percentile(seen, 50) * 1000, 1),
              "press_to_screen_p99_ms": round(percentile(seen, 99) * 1000, 1), "presses": len(seen),
              "fill_s": filled["fill_s"], "summaries_s": filled["summaries_s"], "repeats": args.repeats}
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0
