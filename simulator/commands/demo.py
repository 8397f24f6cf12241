"""`pingjia demo`: a hall on this machine with virtual evaluators rating at random.

Without --ratings it runs until Ctrl-C. With --ratings M it makes exactly M presses,
waits for them to reach the platform, prints a one-line JSON summary last and exits 0
only if every press was stored and forwarded once, with its right tags, and every bad
review opened its work order and raised its alert on the event stream (alert_p99_ms: from
the press that confirmed it to the alert's arrival at a console's stream). With --model
tablet or mixed, tablets' citizens also rate parts; `itemised` counts the ratings that
reached the platform with the parts they chose.
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path

from gateway.protocol import BAD_LEVELS

from .. import say
from ..event_stream import EventStream
from ..harness import Hall
from ..load import percentile


def _interrupt(*_):
    raise KeyboardInterrupt


def main(args) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-demo-"))
    if args.devices < 1:
        say("--devices must be at least 1")
        return 2
    # SIGTERM ends the demo like Ctrl-C does, so every child is stopped either way
    signal.signal(signal.SIGTERM, _interrupt)
    model = getattr(args, "model", "five-button")
    hall = Hall(home, devices=args.devices, model=model)
    try:
        say(f"starting a hall with {args.devices} virtual evaluators ({model}) in {home} ...")
        hall.start()
        say(f"gateway API:  {hall.cfg.api_url}/docs   (bearer token: {hall.token})")
        say(f"platform:     {hall.cfg.platform_url}/sim/stats  (profile {hall.cfg.platform_profile})")
        say(f"broker:       {hall.cfg.broker_host}:{hall.cfg.broker_port} (devices, TLS; hall CA "
            f"{hall.cfg.tls_dir / 'ca.crt'})")
        if args.ratings is None:
            return _run_forever(hall)
        return _run_counted(hall, args.ratings)
    except KeyboardInterrupt:
        say("stopping ...")
        return 0
    finally:
        hall.stop()


def _rater(hall: Hall, dev: str, quota: int | None, pressed: list, errors: list, stop: threading.Event):
    n = 0
    while not stop.is_set() and (quota is None or n < quota):
        try:
            pressed.append(hall.rate(dev))
            n += 1
        except Exception as e:  # reported in the summary, the other devices carry on
            errors.append(f"{dev}: {e}")
            return
        if quota is None:
            stop.wait(hall.rng.uniform(1, 4))  # citizens arrive every few seconds


def _start_raters(hall, quotas, pressed, errors, stop):
    threads = [threading.Thread(target=_rater, args=(hall, dev, q, pressed, errors, stop), daemon=True)
               for dev, q in quotas.items()]
    for t in threads:
        t.start()
    return threads


def _run_counted(hall: Hall, total: int) -> int:
    devs = list(hall.devices)
    quotas = {d: total // len(devs) + (1 if i < total % len(devs) else 0) for i, d in enumerate(devs)}
    pressed: list[dict] = []
    errors: list[str] = []
    stop = threading.Event()
    stream = EventStream(hall.cfg.api_url, hall.token)  # a console, watching for alerts
    t0 = time.monotonic()
    for t in _start_raters(hall, quotas, pressed, errors, stop):
        t.join()
    for e in errors:
        say(f"rating failed: {e}")
    hall.wait_drained(pressed)
    summary = hall.summary(pressed)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary.update(_work_orders(hall, pressed, stream))
    stream.close()
    ok = (summary["pressed"] == total and summary["stored"] == summary["forwarded"] == total
          and summary["duplicates"] == summary["lost"] == summary["mistagged"] == 0
          and summary["work_orders"] == summary["alerts"] == summary["bad_reviews"]
          and summary["itemised"] == sum(1 for p in pressed if p.get("parts")))
    print(json.dumps(summary), flush=True)
    return 0 if ok else 1


def _work_orders(hall: Hall, pressed: list[dict], stream: EventStream) -> dict:
    """Each bad review pressed: its work order, and the time from its press to its alert."""
    bad = {p["id"]: p for p in pressed if p["level"] in BAD_LEVELS}
    opened = {o["rating_id"] for o in hall.work_orders()}
    alerts = {e["rating_id"]: e["_arrived"] for e in stream.of("bad_review")}
    latency = [alerts[rid] - p["pressed_at"] for rid, p in bad.items() if rid in alerts]
    return {"bad_reviews": len(bad), "work_orders": len(opened & set(bad)), "alerts": len(latency),
            "alert_p50_ms": round(percentile(latency, 50) * 1000, 1) if latency else None,
            "alert_p99_ms": round(percentile(latency, 99) * 1000, 1) if latency else None}


def _run_forever(hall: Hall) -> int:
    pressed: list[dict] = []
    errors: list[str] = []
    stop = threading.Event()
    _start_raters(hall, {d: None for d in hall.devices}, pressed, errors, stop)
    say("rating at random; Ctrl-C to stop")
    try:
        while True:
            time.sleep(10)
            s = hall.summary(list(pressed))
            say(f"pressed {s['pressed']}  stored {s['stored']}  forwarded {s['forwarded']}  "
                 f"on the way {s['lost']}  duplicates {s['duplicates']}")
    finally:
        stop.set()
