"""Every copy of the shared names equals protocol/vectors/names.json: the gateway's, the
simulator's, the API's, the province profiles' level maps, and, under MicroPython, the
device's (its protocol module, its screens and its MQTT client)."""

import json
import typing

from gateway import protocol
from gateway.api.ratings import Level
from gateway.province import PROFILE_DIR
from simulator import mqttlite
from simulator.virtual_device import LEVEL_BUTTON, REASON_BUTTON
from tests.conftest import VECTORS, run_device_code

NAMES = json.loads((VECTORS / "names.json").read_text())
LEVELS = NAMES["levels"]
REASONS = NAMES["reasons"]


def test_the_gateway_and_the_simulator_keep_the_same_names():
    assert {lv["code"]: (lv["zh"], lv["score"]) for lv in LEVELS} == protocol.LEVELS
    assert list(protocol.LEVELS) == [lv["code"] for lv in LEVELS]  # best to worst
    assert {lv["code"] for lv in LEVELS if lv["bad"]} == protocol.BAD_LEVELS
    assert {r["code"]: r["zh"] for r in REASONS} == protocol.REASONS
    assert {p["code"]: p["zh"] for p in NAMES["parts"]} == protocol.PARTS
    assert list(protocol.PARTS) == [p["code"] for p in NAMES["parts"]]
    assert list(typing.get_args(Level)) == [lv["code"] for lv in LEVELS]
    assert {lv["code"]: lv["button"] for lv in LEVELS} == LEVEL_BUTTON
    assert {r["code"]: r["button"] for r in REASONS if r["button"]} == REASON_BUTTON
    assert {k: getattr(mqttlite, k) for k in NAMES["mqtt_packets"]} == NAMES["mqtt_packets"]


def test_every_province_profile_maps_every_level():
    for path in PROFILE_DIR.glob("*.json"):
        text = path.read_text()
        for lv in LEVELS:
            assert f'"{lv["code"]}"' in text, (path.name, lv["code"])


def test_the_device_keeps_the_same_names(tmp_path):
    (tmp_path / "names.json").write_text(json.dumps(NAMES, ensure_ascii=False))
    out = run_device_code("""
import json, proto, mqtt, flow, tablet
names = json.load(open("names.json"))
print(json.dumps({
    "levels": list(proto.LEVELS), "bad": list(proto.BAD), "reasons": list(proto.REASONS),
    "tablet_parts": tablet.PARTS, "tablet_reasons": tablet.REASON_LABELS,

    "level_names": list(flow.LEVEL_NAMES), "reason_screen": flow.REASON_SCREEN,
    "mqtt": {k: getattr(mqtt, k) for k in names["mqtt_packets"]}}))
""", tmp_path)[0]
    by_button = sorted(LEVELS, key=lambda lv: lv["button"])
    assert out["levels"] == [lv["code"] for lv in by_button]  # button N is proto.LEVELS[N - 1]
    assert out["bad"] == [lv["code"] for lv in by_button if lv["bad"]]
    assert out["level_names"] == [lv["zh"] for lv in by_button]
    with_button = sorted((r for r in REASONS if r["button"]), key=lambda r: r["button"])
    assert out["reasons"] == [r["code"] for r in with_button]
    screen = " ".join(out["reason_screen"])
    for r in with_button:  # the reason screen labels each button with its reason
        assert f"{r['button']}{r['label']}" in screen, (r, screen)
    assert out["mqtt"] == NAMES["mqtt_packets"]
    parts = {p["code"]: p["zh"] for p in NAMES["parts"]}
    assert out["tablet_parts"] and all(parts.get(code) == zh for code, zh in out["tablet_parts"])  # the tablet's
    assert len(out["tablet_reasons"]) == len(with_button)  # a chip for each reason, in proto.REASONS order


def test_the_console_keeps_the_same_names():
    import re

    from gateway.console import STATIC

    js = (STATIC / "app.js").read_text()

    def table(name: str) -> dict:
        body = re.search(rf"const {name} = \{{(.*?)\}};", js, re.S).group(1)
        return dict(re.findall(r'(\w+): "([^"]*)"', body))

    assert table("LEVELS") == {lv["code"]: lv["zh"] for lv in LEVELS}
    assert table("REASONS") == {r["code"]: r["zh"] for r in REASONS}
    assert table("PARTS") == {p["code"]: p["zh"] for p in NAMES["parts"]}
    assert set(table("RESETS")) == set(protocol.RESET_CAUSES)
    from gateway import auth
    from gateway.data import workorders

    assert set(table("STATES")) == set(workorders.STATES) and set(table("ROLES")) == set(auth.ROLES)
    assert set(table("STEPS")) == {"opened", *workorders.STEPS}
