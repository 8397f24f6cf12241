"""`pingjia bench firmware`: the evaluator firmware's memory, latency and outbox figures.

- peak_heap_bytes: the real firmware under `micropython -X heapsize=HEAP` (128k by default;
  64k shows the MemoryError) in a real hall
  (Mosquitto, gateway, platform stand-in) takes RATINGS ratings while its link goes up
  and down: Wi-Fi lost, broker stopped. Live heap (after a collection) is sampled every
  20 ms on the device; the figure is the largest sample. Target <= 48 KB.
- press_to_confirm_p99_ms: from the press reaching the firmware to the thanks screen,
  which comes after the rating is flushed to flash; the p99 while the broker is down and
  the publisher is in its reconnect loop (target <= 20 ms), and over all presses.
  Presses are 60 ms apart here (the device's minimum gap lowered from the board's 800 ms
  so the run is short); the ESP32 adds its 30 ms debounce before a press reaches the flow.
- crashes: times the MicroPython unix port itself died of a signal during the run (it does,
  now and then, in this bench's long churn at 128k, old firmware and new alike); the
  simulator boots the device again as an ESP32's panic handler would, and the heap
  figures are then of its last boot.
- With --model tablet: the tablet's firmware (its 480x320 canvas, 300 KB, in a 2 MB heap
  standing for the ESP32-S3's PSRAM), rated by taps: a level, reasons for a bad review,
  parts for every other rating, then submit. touch_to_confirm_p99_ms is from the submitting
  tap reaching the firmware to the thanks screen drawn, after the flush (its thank-you cut
  from 3 s to 50 ms, as the gap is); heap_in_use_bytes
  is the live heap once the run is over. The tablet speaks unless --voice is left to it.
- outbox_append_ms: one record appended and flushed (fsync) on this machine's disk.
- outbox_capacity: ratings that fit in 1 MB of littlefs (MicroPython's VfsLfs2 on a 1 MB
  block device of 4 KB blocks, as on the ESP32), filled until the flash is full.
- tls_*: what TLS costs the device: the firmware's MQTT client connecting (to CONNACK) to
  the hall's broker over TLS, checking it against the hall CA, against the same client
  over plain TCP (the broker's loopback listener); the median of several connects, the
  MicroPython heap it keeps and allocates, and the process RSS it adds (mbedTLS's own
  buffers, which the unix port, like the ESP32's IDF heap, keeps outside the GC heap).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import firmware
from firmware import micropython_binary, voice
from firmware.build import build

from .. import say
from ..harness import BAD_LEVELS, TABLET_PARTS, Hall, wait_until
from ..load import percentile
from ..virtual_device import LEVEL_BUTTON, REASON_BUTTON

# A typical record: the payload flow.store() writes (records.encode), with a 17-character serial.
OUTBOX_SCRIPT = """
import os, sys, time, json
sys.path.insert(0, %(device)r)
import outbox
from outbox import Outbox

def payload(i):
    return b"%%d,%%d,%%d,1,%%d,W01-20261123-%%04d" %% (
        1 + i %% 5, (i %% 5 > 2) * (1 + i %% 5), 1795000000000 + i * 1000, 86400000 + i, i %% 10000)

class Flash:  # a block device as littlefs sees the ESP32's flash partition
    def __init__(self, blocks, size=4096):
        self.size = size
        self.n = blocks
        self.mem = bytearray(blocks * size)
    def readblocks(self, b, buf, off=0):
        a = b * self.size + off
        buf[:] = memoryview(self.mem)[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        a = b * self.size + (off or 0)
        self.mem[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        return {4: self.n, 5: self.size, 6: 0}.get(op)

mode = %(mode)r
if mode == "append":
    o = Outbox()
    t = []
    for i in range(%(appends)d):
        t0 = time.ticks_us()
        o.append(i + 1, payload(i), b"1,0.1.0")
        t.append(time.ticks_diff(time.ticks_us(), t0))
    print(json.dumps(t))
else:
    bd = Flash(256)  # 1 MB
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    os.chdir("/flash")
    o = Outbox()
    n = 0
    try:
        while True:
            o.append(n + 1, payload(n), b"1,0.1.0")
            n += 1
    except OSError:
        pass
    o = Outbox()  # and it all reads back after a reboot
    print(json.dumps({"capacity": n, "depth": o.depth(), "corrupt": o.corrupt,
                      "record_bytes": len(payload(n)) + 10 + len(str(n))}))
"""


def _outbox(mode: str, cwd: Path, appends: int = 1000, heap: str = "4m"):
    script = OUTBOX_SCRIPT % {"device": str(firmware.DEVICE_DIR), "mode": mode, "appends": appends}
    p = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", "-c", script], cwd=cwd,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"outbox benchmark failed:\n{p.stdout}{p.stderr}")
    return json.loads(p.stdout.splitlines()[-1])


def _flow(args, home: Path) -> dict:
    # the firmware as flashed: bytecode from `pingjia firmware build` (compiling source at
    # boot would need more RAM than the ESP32 gives, and the device never does it)
    tablet = args.model == "tablet"
    build(home / "firmware", model=args.model)
    hall = Hall(home / "hall", devices=1, hall="bench", seed=3, device_heap=args.heap, model=args.model,
                device_config={"min_gap_ms": 50, "heap_watch_ms": 20, "thanks_ms": 50,
                               "voice": True if args.voice else None if tablet else False},
                device_code=home / "firmware")
    hall.start()
    try:
        dev = next(iter(hall.devices))
        link = hall.controller.link(dev)
        n = args.ratings
        # the link's story over the run: up, Wi-Fi lost, up with a backlog, broker down, up
        phases = [("up", n * 4 // 10), ("wifi_down", n // 5), ("up_backlog", n // 5),
                  ("broker_down", n - n * 4 // 10 - 2 * (n // 5))]
        by_phase: dict[str, list[int]] = {}
        pressed: list[str] = []
        for name, count in phases:
            say(f"{name}: {count} ratings")
            if name == "wifi_down":
                link.send({"wifi": False})
            elif name == "up_backlog":
                link.send({"wifi": True})
            elif name == "broker_down":
                hall.broker.stop()
                time.sleep(1)  # the publisher is now failing to reconnect
            for _ in range(count):
                level = list(LEVEL_BUTTON)[len(pressed) % 5]
                reason = list(REASON_BUTTON)[len(pressed) % 5] if level in BAD_LEVELS else None
                parts = {TABLET_PARTS[len(pressed) % 5]: level} if tablet and len(pressed) % 2 else None
                p, link = _press(hall, dev, link, name, level, reason, parts, len(pressed))
                pressed.append(p["id"])
                by_phase.setdefault(name, []).append(p["confirm_ms"])
        hall.broker.start()
        say("link back; draining ...")
        wait_until(lambda: set(pressed) <= set(hall.stored_rows()), 180, interval=0.5,
                   what="every rating to be stored")
        got = link.seen["heap"]
        link.send({"heap": True})
        link.wait(lambda l: l.seen["heap"] > got, 5)
        all_ms = [m for v in by_phase.values() for m in v]
        say("TLS: connects with and without it ...")
        tls = _tls_cost(hall, args.heap)
        what = "touch" if tablet else "press"  # from the submitting tap, or the press
        down = by_phase.get("broker_down")
        return {**tls,
            "model": args.model,
            "ratings": len(pressed), "stored": len(set(pressed) & set(hall.stored_rows())),
            "heap_size": _heap_bytes(args.heap),
            "peak_heap_bytes": link.heap.get("peak"),
            "heap_at_start_bytes": link.heap.get("start"),
            "heap_in_use_bytes": link.heap.get("now"),
            f"{what}_to_confirm_p99_ms": percentile(down, 99) if down else None,
            f"{what}_to_confirm_p50_ms": percentile(down, 50) if down else None,
            f"{what}_to_confirm_p99_all_ms": percentile(all_ms, 99) if all_ms else None,
            f"{what}_to_confirm_max_ms": max(all_ms) if all_ms else None,
            "boots": hall.devices[dev].boots,
            "crashes": hall.devices[dev].crashes,  # of the interpreter: see _press
        }
    finally:
        hall.stop()


def _press(hall: Hall, dev: str, link, phase: str, level: str, reason: str | None, parts, n: int):
    """One rating, and the device's link: should the interpreter crash meanwhile (the
    unix port can, under a full heap; virtual_device.py boots it again as an ESP32's panic
    handler would), the rebooted device is found, put back in the phase's state, and the
    press made again. Counted in `crashes`; anything else that stops confirming ends the run."""
    device = hall.devices[dev]
    for _ in range(3):
        crashes = device.crashes
        try:
            return hall.press(dev, level, reason, parts=parts), link
        except TimeoutError:
            # a crash may come seconds after the device stopped answering
            if not link.wait(lambda _l: device.crashes > crashes or device.proc.poll() is not None, 15):
                got = link.seen["heap"]
                link.send({"heap": True})  # still running?
                alive = link.wait(lambda l: l.seen["heap"] > got, 5)
                raise SystemExit(f"the device stopped confirming presses in phase {phase}, after {n}; it said: "
                                 f"{dict(link.seen)}; it shows {link.display}; "
                                 f"{'it answers: ' + str(link.heap) if alive else 'it answers nothing'}") from None
        old = link
        wait_until(lambda: hall.controller.links.get(dev) not in (None, old), 30, what="the device booted again")
        link = hall.controller.link(dev)
        if phase == "wifi_down":
            link.send({"wifi": False})
        elif phase != "broker_down":
            link.wait(lambda l: l.link_up, 30)
    raise SystemExit(f"the device crashed three times over one press in phase {phase}")


TLS_SCRIPT = """
import sys, gc, time, json, asyncio, binascii, ssl
sys.path.insert(0, %(device)r)
from mqtt import Client

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.verify_mode = ssl.CERT_REQUIRED
    c.load_verify_locations(cadata=binascii.a2b_base64(%(ca)r))
    return c

async def once(tls):
    host, port, user, pw = %(tls_login)r if tls else %(plain_login)r
    c = Client(user, host, port, user, pw, tls=ctx() if tls else None)
    gc.collect()
    a0, r0, t0 = gc.mem_alloc(), rss_kb(), time.ticks_us()
    await c.connect()
    t = time.ticks_diff(time.ticks_us(), t0)
    grew = gc.mem_alloc() - a0
    gc.collect()
    live, rss = gc.mem_alloc() - a0, rss_kb() - r0
    await c.disconnect()
    return t, grew, live, rss

async def main():
    for tls in (False, True):
        for _ in range(%(runs)d):
            print(json.dumps([tls] + list(await once(tls))))
asyncio.run(main())
"""


def _tls_cost(hall: Hall, heap: str, runs: int = 7) -> dict:
    creds = next(iter(hall.credentials.values()))
    script = TLS_SCRIPT % {"device": str(firmware.DEVICE_DIR), "ca": creds["ca"], "runs": runs,
                           "tls_login": (hall.cfg.broker_host, hall.cfg.broker_port, creds["user"], creds["password"]),
                           "plain_login": ("127.0.0.1", hall.cfg.local_port, hall.cfg.gateway_user,
                                           hall.cfg.gateway_password)}
    p = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", "-c", script],
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise SystemExit(f"the TLS measurement failed: {p.stderr or p.stdout}")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    med = lambda tls, i: statistics.median(r[i] for r in rows if r[0] == tls)  # noqa: E731
    return {"tls_connect_ms": round(med(True, 1) / 1000, 1), "plain_connect_ms": round(med(False, 1) / 1000, 1),
            "tls_connect_ratio": round(med(True, 1) / max(med(False, 1), 1), 1),
            "tls_heap_allocated_bytes": med(True, 2) - med(False, 2),
            "tls_heap_kept_bytes": med(True, 3) - med(False, 3),
            # the first connection's: later ones reuse what the C heap freed
            "tls_rss_kb": max(r[4] for r in rows if r[0])}


def _heap_bytes(text: str) -> int:
    t = text.lower()
    return int(t[:-1]) * (1024 if t.endswith("k") else 1024 * 1024) if t[-1] in "km" else int(t)


def main(args) -> int:
    args.heap = args.heap or ("2m" if args.model == "tablet" else "128k")
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-bench-fw-"))
    home.mkdir(parents=True, exist_ok=True)
    say("outbox: append and flush ...")
    (home / "disk").mkdir(exist_ok=True)
    t_us = _outbox("append", home / "disk", appends=1000, heap=args.heap)
    say("outbox: filling 1 MB of littlefs ...")
    cap = _outbox("capacity", home)
    say(f"the whole flow under -X heapsize={args.heap}: {args.ratings} ratings ...")
    flow = _flow(args, home)
    result = {
        **flow,
        "outbox_append_ms": round(statistics.median(t_us) / 1000, 3),
        "outbox_append_p99_ms": round(percentile(t_us, 99) / 1000, 3),
        "outbox_capacity": cap["capacity"],
        "outbox_capacity_reread": cap["depth"],
        "outbox_record_bytes": cap["record_bytes"],
        "voice": args.voice or args.model == "tablet",  # the tablet always speaks
        "voice_clips_bytes": {name: len(c) for name, c in voice.clips().items()},
        "voice_clips_total_bytes": sum(len(c) for c in voice.clips().values()),
        "targets": {"peak_heap_bytes": 48 * 1024, "press_to_confirm_p99_ms": 20, "outbox_capacity": 10000}
        if args.model != "tablet" else {"touch_to_confirm_p99_ms": 20, "outbox_capacity": 10000},
    }
    print(json.dumps(result))
    return 0
