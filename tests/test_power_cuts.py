"""Power cuts: kill -9 of the real firmware at random moments while citizens press, 500
times, each followed by power on. Every rating confirmed to a citizen must reach the
gateway exactly once, as pressed; nothing the device stored torn or corrupt may arrive."""

import random
import threading
import time

from simulator.harness import BAD_LEVELS, wait_until
from simulator.virtual_device import LEVEL_BUTTON, REASON_BUTTON

CUTS = 500
DEVICES = 4


def _cut_again_and_again(hall, dev, cuts, rng, confirmed, pressed_by_boot, errors):
    d = hall.devices[dev]
    try:
        for _ in range(cuts):
            d.power_cut()
            hall.controller.forget(dev)
            d.start()
            link = hall.controller.link(dev, timeout=20)
            assert link.wait(lambda l: l.boot, 10), "no boot event"
            boot = link.boot["boot"]
            level = rng.choice(list(LEVEL_BUTTON))
            reason = rng.choice(list(REASON_BUTTON)) if level in BAD_LEVELS else None
            pressed_by_boot.setdefault((dev, boot), []).append(level)
            n = len(link.confirmed)
            link.press(LEVEL_BUTTON[level])
            if reason:
                link.wait(lambda l: l.seen["reason"] > 0, 0.5)
                time.sleep(rng.uniform(0, 0.05))
                link.press(REASON_BUTTON[reason])
            # the plug is pulled anywhere from before the press lands to after the ack
            link.wait(lambda l: len(l.confirmed) > n, rng.uniform(0, 0.3))
            time.sleep(rng.uniform(0, 0.05))
            d.power_cut()
            with link.cond:
                for ev in link.confirmed[n:]:
                    assert ev["boot"] == boot
                    confirmed.append((dev, boot, ev))
        d.start()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(f"{dev}: {e!r}")


def test_500_power_cuts_lose_and_duplicate_no_confirmed_rating(hall_factory):
    hall = hall_factory(devices=DEVICES)
    rng = random.Random(11)
    confirmed, pressed_by_boot, errors = [], {}, []
    threads = [threading.Thread(target=_cut_again_and_again,
                                args=(hall, dev, CUTS // DEVICES, random.Random(rng.random()),
                                      confirmed, pressed_by_boot, errors))
               for dev in hall.devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors
    assert sum(hall.devices[d].boots for d in hall.devices) >= CUTS + DEVICES
    assert len(confirmed) > CUTS // 4, "too few presses were confirmed to test anything"
    print(f"{len(confirmed)} confirmed over {CUTS} cuts")

    want = {f"{dev}:{ev['seq']}": (dev, boot, ev) for dev, boot, ev in confirmed}
    assert len(want) == len(confirmed), "a sequence number was used twice"
    wait_until(lambda: set(want) <= set(hall.stored_rows()), 120, interval=0.5,
               what="every confirmed rating to be stored")
    rows = hall.stored_rows()
    for rid, (_dev, boot, ev) in want.items():
        row = rows[rid]
        assert (row["level"], row["boot"]) == (ev["level"], boot), rid
        assert row["reason"] == ",".join(ev["reason"]), rid
    # unconfirmed ratings may arrive too (flushed, then the power went before the thanks
    # screen), but only ones a citizen pressed in that very boot
    for rid, row in rows.items():
        assert row["level"] in pressed_by_boot.get((row["dev"], row["boot"]), []), rid
    stats = hall.rejection_counts()
    assert not {"schema", "bad_signature", "replay", "unprocessable"} & set(stats), stats
