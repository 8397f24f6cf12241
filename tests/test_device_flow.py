"""The firmware's flow on a running device: offline indicator, reasons, commands, resets, crashes."""

import os
import signal
import time

from gateway import protocol
from simulator import screen

from .protocol_device import login


def test_offline_indicator_while_wifi_is_down_and_ratings_still_kept(hall):
    link = hall.controller.link("pj-0001")
    lit = link.seen["offline"]
    link.send({"wifi": False})
    assert link.wait(lambda l: not l.link_up and l.seen["offline"] > lit, 10)
    offline = hall.press("pj-0001", "dissatisfied", "slow")  # kept in flash meanwhile
    assert offline["id"] not in hall.stored_rows()
    link.send({"wifi": True})
    assert link.wait(lambda l: l.link_up, 30)
    hall.wait_drained([offline], timeout=30)
    row = hall.stored_rows()[offline["id"]]
    assert row["level"] == "dissatisfied" and row["reason"] == "slow"


def test_a_reason_not_chosen_in_time_is_recorded_as_none(hall_factory):
    import simulator.harness as h
    hall = hall_factory(devices=2, device_config={"reason_timeout_s": 2})  # 15 s on a real counter
    link = hall.controller.link("pj-0002")
    n, asked = len(link.confirmed), link.seen["reason"]
    t0 = time.monotonic()
    assert link.tap(h.LEVEL_BUTTON["very_dissatisfied"], lambda l: l.seen["reason"] > asked, 5)
    assert link.wait(lambda l: len(l.confirmed) > n, 10)
    assert time.monotonic() - t0 >= 2  # it waited for the reason first
    assert link.confirmed[n]["reason"] == ["none"]
    rid = f"pj-0002:{link.confirmed[n]['seq']}"
    hall.wait_drained([{"id": rid}], timeout=30)
    assert hall.stored_rows()[rid]["reason"] == "none"


def test_a_reboot_command_is_on_the_device_s_reset_record(hall):
    link = hall.controller.link("pj-0003")
    boot = link.boot["boot"]
    key = bytes.fromhex(hall.credentials["pj-0003"]["key"])
    c, host, port = login(hall.cfg, hall.cfg.gateway_user, hall.cfg.gateway_password, "test-gateway-cmd")
    c.connect(host, port)
    c.loop_start()
    hall.controller.forget("pj-0003")  # so link() below waits for the rebooted device
    msg = protocol.signed(key, "cmd", {"dev": "pj-0003", "id": 1, "cmd": "reboot", "at": int(time.time())})
    c.publish(protocol.topic(hall.cfg.hall, "pj-0003", "cmd"), protocol.encode(msg), qos=1).wait_for_publish(5)
    c.loop_stop()
    link = hall.controller.link("pj-0003", timeout=20)
    assert link.wait(lambda l: l.boot, 10)
    assert link.boot["boot"] == boot + 1 and link.boot["reset"] == "intended"
    assert hall.devices["pj-0003"].boots == 2


def test_a_device_clock_drifted_into_the_future_is_flagged_not_believed(hall):
    link = hall.controller.link("pj-0002")
    assert link.wait(lambda l: l.seen["synced"], 10)  # a later sync would undo the drift
    link.send({"clock_ms": 3 * 3600 * 1000})  # three hours fast, after its time sync
    before = time.time()
    p = hall.press("pj-0002", "satisfied")
    hall.wait_drained([p], timeout=30)
    row = hall.stored_rows()[p["id"]]
    assert row["device_ts"] / 1000 > before + 3 * 3600 - 60
    assert row["clock"] == "suspect" and before - 1 < row["rated_at"] < time.time() + 1


def test_a_running_device_sends_its_screen(hall, tmp_path):
    hall.new_case("pj-0001")
    link = hall.controller.link("pj-0001")
    fb = link.screen()
    path = screen.save(fb, tmp_path / "pj-0001.png")
    assert path.stat().st_size > 100 and sum(map(sum, screen.pixels(fb))) > 200
    assert "请评价" in link.display


def test_a_crashed_interpreter_boots_again_as_a_panicked_esp32_does(hall_factory):
    hall = hall_factory(devices=1)
    dev = "pj-0001"
    d = hall.devices[dev]
    hall.new_case(dev)
    kept = hall.press(dev, "satisfied")
    hall.controller.forget(dev)  # so link() below waits for the booted device
    os.kill(d.proc.pid, signal.SIGSEGV)
    link = hall.controller.link(dev, timeout=20)
    assert link.wait(lambda l: l.boot, 10)
    assert link.boot["reset"] == "panic" and d.crashes == 1 and d.boots == 2
    assert link.wait(lambda l: l.link_up, 20)
    hall.new_case(dev)
    after = hall.press(dev, "very_satisfied")
    hall.wait_drained([kept, after], timeout=30)
    assert {kept["id"], after["id"]} <= set(hall.stored_rows())
