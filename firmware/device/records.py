# The outbox's compact record of a rating, and the rating message it stands for.
# A record is "level,reason,ts,tsync,up,case" (level and reason as button numbers; the
# reason 0 for none asked, -1 for the citizen's timeout); the segment header holds what
# all its records share: "boot,fw". The signature is made when the rating is sent.
# The tablet's records (outbox format 2) start with T: tablet_records.py.
import proto


def reasons(reason):
    return [] if reason == 0 else ["none"] if reason < 0 else [proto.REASONS[reason - 1]]


def encode(button, reason, ts, tsync, up, case):
    if "\n" in case:
        case = ""  # cannot come from the gateway (it checks serials); never tear a record
    return b"%d,%d,%d,%d,%d,%s" % (button, reason, ts, tsync, up, case)


def header(boot, fw):
    return b"%d,%s" % (boot, fw)


def decode(dev, seq, payload, head):
    """The rating message of one outbox record, unsigned, or None if it does not parse."""
    try:
        text = payload.decode()
        parts = None
        if text[:1] == "T":
            import tablet_records

            level, why, ts, tsync, up, case, parts = tablet_records.fields(text[1:])
        else:
            level, reason, ts, tsync, up, case = text.split(",", 5)
            why = reasons(int(reason))
        boot, fw = head.decode().split(",", 1)
        msg = {"dev": dev, "seq": seq, "level": proto.LEVELS[int(level) - 1],
               "reason": why, "case": case, "ts": int(ts),
               "tsync": tsync == "1", "boot": int(boot), "up": int(up), "fw": fw}
        if parts:
            msg["parts"] = parts
        return msg
    except (ValueError, IndexError):
        return None
