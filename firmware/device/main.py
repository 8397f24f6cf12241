# Device entry point: the boot path picks the firmware slot to run (slots.py), boots a
# new version once on trial and rolls back one that did not prove itself, then hands over
# to the slot's app.py. With slots.py it is the one part an update never replaces, so it
# stays this small.
#
# On trial the hardware watchdog starts before the new version is even imported: a build
# that hangs at import or later is reset, and the next boot finds the trial tried and
# uncommitted and runs the old slot again. A build that fails to import or crashes is
# rolled back at once. Only the new version itself commits (update.py), once it has
# reached the gateway.
import sys

import slots

WDT_MS = 30000  # config.py's wdt_ms default: the app's supervisor feeds it from here on


def reset():
    if sys.platform == "esp32":
        import machine
        machine.reset()
    sys.exit(3)  # the unix port: the simulator boots a device that exits with 3 again


def watchdog():
    if sys.platform == "esp32":
        import machine
        return machine.WDT(timeout=WDT_MS)
    with open("wdt", "w") as f:  # the unix port: the simulator's watchdog (board_unix.py)
        f.write(str(WDT_MS))


def main():
    st = slots.read()
    if st is None:
        print("pingjia: no firmware slot in flash (slot.json): install the firmware")
        return
    slot, trial = st["active"], False
    if st.get("trial") not in (None, slots.other(slot)):
        st = slots.rollback(st, "bad_state")  # names no slot, or the running one: never booted
    if st.get("trial"):
        if st.get("tried"):  # booted on trial before, and never committed
            st = slots.rollback(st, "no_commit")
        else:
            st["tried"] = 1
            slots.write(st)
            slot, trial = st["trial"], True
            watchdog()
    sys.path.insert(0, slot)
    try:
        import app
        app.main(slot, trial)
    except Exception as e:  # a reboot (SystemExit) or Ctrl-C passes: the trial stays tried
        st = slots.read()
        if not (trial and st and st.get("trial") == slot):
            raise  # not on trial, or committed already
        slots.rollback(st, "crash: " + repr(e)[:80])
        reset()


main()
