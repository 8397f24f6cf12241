# The power-safe outbox: every confirmed rating lives here until the gateway acks it.
#
# Layout in flash (folder "outbox.d"; the dot matters: the firmware's modules share the
# flash root, and a folder named like a module would shadow it on import):
#   NNNNNNNNNN.seg  append-only lines "<crc32 hex8> <body>\n", the file named after the
#                   first sequence number it holds. The first line's body is "#<header>"
#                   (what all its records share: boot count, firmware); every other body
#                   is "<seq>,<payload>".
#   NNNNNNNNNN.ack  append-only acked records, one "<seq - first>\n" per line
# Records are compact text, not signed JSON: the signature is recomputed when a rating
# is sent, which is what lets 10,000 ratings fit in 1 MB of flash.
# A segment is never appended to after a reboot or a write error (a torn tail could
# glue onto the next record), and both files go once every record in it is acked.
# A line whose CRC does not check out is skipped and counted, never sent.
import os
import binascii

DIR = "outbox.d"
# The format above is 1; format 2 adds the tablet's records (records.py), which only a
# tablet writes. An update must not strand ratings: a build says which formats it reads
# and writes (its manifest), and the updater refuses one that could not read what this
# version wrote, or whose records this version could not read after a rollback.
READS = (1, 2)
WRITES = 1  # the five-button's
WRITES_TABLET = 2


def writes(model):
    return WRITES_TABLET if model == "tablet" else WRITES
SEG_BYTES = 12000  # close a segment near three 4 KB flash blocks
CAPACITY = 10000  # pending ratings; beyond this the device stops taking ratings


def _name(first, ext):
    return DIR + "/%010d.%s" % (first, ext)


def _crc(data):
    return b"%08x" % (binascii.crc32(data) & 0xFFFFFFFF)


class Outbox:
    def __init__(self):
        try:
            os.stat(DIR)
        except OSError:
            os.mkdir(DIR)
        self.corrupt = 0  # lines skipped since boot
        self.header = b""
        self._f = None  # the segment being appended to (always the last of _segs)
        self._size = 0
        # per segment: [first seq, pending records, acked set]
        self._segs = []
        for n in sorted(n for n in os.listdir(DIR) if n.endswith(".seg")):
            s = [int(n[:10]), 0, None]
            s[2] = self._acked(s[0])
            for seq, _, _ in self._records(s[0], True):
                if seq not in s[2]:
                    s[1] += 1
            self._segs.append(s)
        self._collect()

    # -- reading -------------------------------------------------------------------
    def _records(self, first, count=False):
        """Yield (seq, payload, header) for the valid records of one segment; with count,
        add the bad lines to self.corrupt (done once per segment, at boot)."""
        try:
            f = open(_name(first, "seg"), "rb")
        except OSError:
            return
        header = None
        with f:
            while True:
                line = f.readline()
                if not line:
                    break
                body = line[9:-1]
                ok = line[-1:] == b"\n" and line[8:9] == b" " and _crc(body) == line[:8]
                if ok and header is None and body[:1] == b"#":
                    header = body[1:]
                    continue
                comma = body.find(b",")
                if ok and header is not None and comma > 0 and body[:comma].isdigit():
                    yield int(body[:comma]), body[comma + 1:], header
                elif count:
                    self.corrupt += 1

    def _acked(self, first):
        acked = set()
        try:
            f = open(_name(first, "ack"), "rb")
        except OSError:
            return acked
        with f:
            for line in f:
                if line[-1:] == b"\n" and line[:-1].isdigit():
                    acked.add(first + int(line))
                # else a torn ack line: that rating is simply resent and acked again
        return acked

    def last(self):
        """(seq, payload, header) of the newest valid record, or None."""
        for s in reversed(self._segs):
            rec = None
            for rec in self._records(s[0]):
                pass
            if rec:
                return rec
        return None

    def pending(self, limit, skip=()):
        """Up to `limit` unacked (seq, payload, header), oldest first, not in `skip`."""
        out = []
        for s in self._segs:
            if not s[1]:
                continue
            for rec in self._records(s[0]):
                if rec[0] in s[2] or rec[0] in skip:
                    continue
                out.append(rec)
                if len(out) >= limit:
                    return out
        return out

    def depth(self):
        return sum(s[1] for s in self._segs)

    def is_full(self):
        return self.depth() >= CAPACITY

    # -- writing -------------------------------------------------------------------
    def append(self, seq, payload, header):
        """Store one record; returns only when it is flushed to flash. Raises OSError
        (flash full or failing): the caller must not confirm the rating then."""
        if self._f is None or self._size >= SEG_BYTES or header != self.header:
            self._close()
            self._f = open(_name(seq, "seg"), "ab")
            self._segs.append([seq, 0, set()])
            self.header = header
            self._size = 0
            self._write(b"#" + header)
        self._write(b"%d," % seq + payload)
        self._segs[-1][1] += 1

    def _write(self, body):
        line = _crc(body) + b" " + body + b"\n"
        try:
            self._f.write(line)
            self._f.flush()  # the unix port's flush is fsync; on the ESP32 it commits to flash
        except OSError:
            self._close()  # never append after a torn write
            raise
        self._size += len(line)

    def ack(self, seq):
        """Mark seq delivered. Returns False if it was not pending (already acked, unknown)."""
        seg = None
        for s in self._segs:
            if s[0] <= seq:
                seg = s
            else:
                break
        if seg is None or seq in seg[2]:
            return False
        for rec in self._records(seg[0]):
            if rec[0] == seq:
                break
        else:
            return False
        with open(_name(seg[0], "ack"), "ab") as f:
            f.write(b"%d\n" % (seq - seg[0]))
        seg[2].add(seq)
        seg[1] -= 1
        self._collect()
        return True

    def _close(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
        self._collect()

    def _collect(self):
        # delete fully acked segments, except the one still being appended to
        keep = []
        for s in self._segs:
            if s[1] == 0 and not (self._f is not None and s is self._segs[-1]):
                for ext in ("seg", "ack"):
                    try:
                        os.remove(_name(s[0], ext))
                    except OSError:
                        pass
            else:
                keep.append(s)
        self._segs = keep
