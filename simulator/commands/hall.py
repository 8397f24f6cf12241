"""`pingjia sim hall`: a hall day, compressed, with the real firmware at every window.

Each window has a device and a staff shift that hands over halfway; the business
stand-in completes cases one after another. Citizens rate most cases with a realistic
mix of levels, pick a reason for a bad review, sometimes press twice (the device refuses
the second rating) and sometimes walk away (the case stays unrated). At the end it waits
for everything to drain and prints a summary table, the last line as JSON.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .. import say
from ..business import STAFF
from ..harness import Hall
from ..load import percentile

WALK_AWAY = 0.12  # citizens who leave without rating
PRESS_TWICE = 0.08  # citizens who press again after the thanks screen


def _window_day(hall: Hall, dev: str, until: float, half: float, rng: random.Random, out: dict, lock):
    window = hall.windows[dev]
    handed_over = False
    link = hall.controller.link(dev)
    while time.monotonic() < until:
        if not handed_over and time.monotonic() >= half:
            # the shift changes between cases, as it does at a real window
            staff_id, name = rng.choice(STAFF)
            hall.hand_over(window, (staff_id + "b", name))
            handed_over = True
        hall.new_case(dev)
        with lock:
            out["cases"] += 1
        if rng.random() < WALK_AWAY:
            with lock:
                out["walked_away"] += 1
        else:
            p = hall.press(dev, *hall.random_level())
            with lock:
                out["pressed"].append(p)
            if rng.random() < PRESS_TWICE:
                seen = link.seen["already_rated"]
                if link.tap(rng.randint(1, 5), lambda l: l.seen["already_rated"] > seen, 10):
                    with lock:
                        out["second_presses_refused"] += 1
        time.sleep(rng.uniform(0.2, 1.0))  # the next citizen steps up


def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-hall-"))
    hall = Hall(home, devices=args.windows, hall="day", seed=args.seed)
    say(f"starting a hall with {args.windows} windows in {home} ...")
    hall.start()
    try:
        rng = random.Random(args.seed)
        out: dict[str, Any] = {"cases": 0, "walked_away": 0, "second_presses_refused": 0, "pressed": []}
        lock = threading.Lock()
        t0 = time.monotonic()
        until, half = t0 + args.minutes * 60, t0 + args.minutes * 30
        threads = [threading.Thread(target=_window_day, daemon=True,
                                    args=(hall, dev, until, half, random.Random(rng.random()), out, lock))
                   for dev in hall.devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        say("day over; draining ...")
        pressed = out["pressed"]
        hall.wait_drained(pressed, timeout=120)
        s = hall.summary(pressed)
        api = httpx.Client(base_url=hall.cfg.api_url, timeout=30,
                           headers={"Authorization": f"Bearer {hall.token}"})
        share = api.get("/api/v1/cases/rated-share").json()
        rows = hall.stored_rows()
        # press (device clock, synced to the gateway) to stored at the gateway
        lat = [rows[p["id"]]["received_at"] * 1000 - rows[p["id"]]["device_ts"] for p in pressed if p["id"] in rows]
        levels: dict[str, int] = {}
        for p in pressed:
            levels[p["level"]] = levels.get(p["level"], 0) + 1
        return {
            "windows": args.windows, "minutes": args.minutes, "cases": out["cases"],
            "rated_share": share["share"], "walked_away": out["walked_away"], **s,
            "second_presses_refused": out["second_presses_refused"],
            "repeats_stored": sum(1 for r in rows.values() if r["repeat_of"]),
            "rejections": hall.rejection_counts(), "levels": levels,
            "press_to_stored_p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "press_to_stored_p99_ms": round(percentile(lat, 99), 1) if lat else None,
        }
    finally:
        hall.stop()


def main(args) -> int:
    r = run(args)
    rows = [("windows", r["windows"]), ("cases", r["cases"]), ("share rated", f"{r['rated_share']:.1%}"),
            ("walked away", r["walked_away"]), ("ratings pressed", r["pressed"]), ("stored", r["stored"]),
            ("forwarded", r["forwarded"]), ("second presses refused", r["second_presses_refused"]),
            ("repeats stored", r["repeats_stored"]), ("lost", r["lost"]), ("duplicates", r["duplicates"]),
            ("mistagged", r["mistagged"]),
            ("rejections", ", ".join(f"{k} {v}" for k, v in r["rejections"].items()) or "none"),
            ("press to stored p50 / p99", f"{r['press_to_stored_p50_ms']} / {r['press_to_stored_p99_ms']} ms")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        say(f"{k:<{width}}  {v}")
    print(json.dumps(r, ensure_ascii=False))
    ok = r["lost"] == r["duplicates"] == r["mistagged"] == 0 and r["stored"] == r["forwarded"] == r["pressed"]
    return 0 if ok else 1
