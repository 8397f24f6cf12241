# The firmware slots (protocol.md section 12). The flash holds two folders, slot.a and
# slot.b, each a whole firmware build with its manifest.json, and slot.json says which
# runs. This module and main.py sit in the flash root, outside the slots: they are the
# boot path, installed over USB and never replaced over the air.
#   {"active": "slot.a"}                                   run slot.a
#   {"active": "slot.a", "trial": "slot.b", "tried": 0,    boot slot.b once, on trial
#    "version": ..., "hash": ..., "cmd": ...}              (main.py sets tried first)
#   {"active": "slot.a", "rolled_back": {...}}             slot.b failed its trial
# Each write replaces the file atomically (write, then rename: LittleFS and POSIX keep the
# old file or the new, never a torn one), and a slot is named only once every file in it
# was checked, so a power cut at any moment leaves a state naming a complete slot.
import json
import os

STATE = "slot.json"
SLOTS = ("slot.a", "slot.b")


def read():
    try:
        with open(STATE) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return None
    return st if isinstance(st, dict) and st.get("active") in SLOTS else None


def write(st):
    with open(STATE + ".tmp", "w") as f:
        f.write(json.dumps(st))
        f.flush()
    os.rename(STATE + ".tmp", STATE)


def other(slot):
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


def rollback(st, why):
    """The trial failed: the active slot stays, and the state says what was refused."""
    st = {"active": st["active"], "rolled_back": {
        "version": st.get("version"), "hash": st.get("hash"), "cmd": st.get("cmd"), "why": why}}
    write(st)
    return st
