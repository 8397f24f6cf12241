# The firmware's entry, called by main.py with the slot it runs from: read the
# provisioned config from flash and run the evaluator. On the unix port the current
# directory is the device's flash (its data folder).
#
# Maintenance: for the first seconds after boot the app has not started and the app's
# watchdog is not running, so a technician's serial tool (mpremote, Ctrl-C) reaches a
# REPL that stays; a file named "maintenance" in flash keeps the app from starting at all.
import os
import sys
import time
import asyncio


def load_board(cfg):
    if sys.platform == "esp32":
        from pins import BOARD  # the build's board (hardware/MODEL.json)

        if BOARD.get("model") == "tablet":
            from board_tablet import Board
        else:
            from board_esp32 import Board
    elif cfg["model"] == "tablet":  # the unix port: the simulator's boards
        from board_unix_tablet import Board
    else:
        from board_unix import Board
    return Board(cfg)


def main(slot, trial=False):
    import config
    try:
        cfg = config.load()
    except (OSError, ValueError) as e:
        print("pingjia: no usable config.json in flash:", e)
        return
    try:
        os.stat("maintenance")
        print("pingjia: maintenance file present, app not started")
        return
    except OSError:
        pass
    if cfg["maintenance_s"]:
        print("pingjia: app starts in %d s; Ctrl-C for the REPL" % cfg["maintenance_s"])
        time.sleep(cfg["maintenance_s"])
    cfg["font"] = slot + "/font.bin"  # the five-button's
    cfg["font_large"] = slot + "/font_large.bin"  # the tablet's
    from evaluator import Evaluator
    asyncio.run(Evaluator(load_board(cfg), cfg, slot, trial).run())
