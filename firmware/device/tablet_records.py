# The tablet's outbox record (format 2): several reasons and the itemised parts,
# "Tlevel,reasons,ts,tsync,up,parts,case" with reasons "0" (a good review), "-1" (the
# timeout's "none") or reason numbers joined by "+" ("1+3"), and parts
# "code:level+code:level" (levels as button numbers). Only a tablet writes them, so a
# five-button loads none of this (records.py imports it for a record that starts with T).
import proto


def encode(button, tags, parts, ts, tsync, up, case):
    """tags: reason numbers (1..5), [-1] for the timeout's "none", [] for a good review;
    parts: {code: button}."""
    r = "+".join(str(t) for t in tags) if tags else "0"
    p = "+".join(k + ":" + str(parts[k]) for k in sorted(parts))
    return b"T%d,%s,%d,%d,%d,%s,%s" % (button, r, ts, tsync, up, p, "" if "\n" in case else case)


def fields(text):
    """(level, reasons, ts, tsync, up, case, parts or None) of a record's text after its T."""
    level, reason, ts, tsync, up, p, case = text.split(",", 6)
    why = [] if reason == "0" else ["none"] if reason == "-1" else [proto.REASONS[int(t) - 1] for t in reason.split("+")]
    parts = None
    if p:
        parts = {}
        for item in p.split("+"):
            code, b = item.split(":")
            parts[code] = proto.LEVELS[int(b) - 1]
    return level, why, ts, tsync, up, case, parts
