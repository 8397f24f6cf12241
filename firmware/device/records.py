# The outbox's compact record of a rating, and the rating message it stands for.
# A record is "level,reason,ts,tsync,up,case" (level and reason as button numbers; the
# reason 0 for none asked, -1 for the citizen's timeout); the segment header holds what
# all its records share: "boot,fw". The signature is made when the rating is sent.
#
# The tablet's record (outbox format 2) carries several reasons and the itemised parts:
# "Tlevel,reasons,ts,tsync,up,parts,case" with reasons "0", "-1" or reason numbers
# joined by "+" ("1+3"), and parts "code:level+code:level" (levels as button numbers).
import proto


def reasons(reason):
    return [] if reason == 0 else ["none"] if reason < 0 else [proto.REASONS[reason - 1]]


def _clean(case):
    return "" if "\n" in case else case  # cannot come from the gateway (it checks serials); never tear a record


def encode_tablet(button, tags, parts, ts, tsync, up, case):
    """tags: reason numbers (1..5), [-1] for the timeout's "none", [] for a good review;
    parts: {code: button}."""
    r = "+".join(str(t) for t in tags) if tags else "0"
    p = "+".join(k + ":" + str(parts[k]) for k in sorted(parts))
    return b"T%d,%s,%d,%d,%d,%s,%s" % (button, r, ts, tsync, up, p, _clean(case))


def encode(button, reason, ts, tsync, up, case):
    return b"%d,%d,%d,%d,%d,%s" % (button, reason, ts, tsync, up, _clean(case))


def header(boot, fw):
    return b"%d,%s" % (boot, fw)


def decode(dev, seq, payload, head):
    """The rating message of one outbox record, unsigned, or None if it does not parse."""
    try:
        text = payload.decode()
        parts = None
        if text[:1] == "T":
            level, reason, ts, tsync, up, p, case = text[1:].split(",", 6)
            why = [] if reason == "0" else ["none"] if reason == "-1" else \
                [proto.REASONS[int(t) - 1] for t in reason.split("+")]
            if p:
                parts = {}
                for item in p.split("+"):
                    code, b = item.split(":")
                    parts[code] = proto.LEVELS[int(b) - 1]
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
