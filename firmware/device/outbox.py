# The power-safe outbox: every confirmed rating lives here until the gateway acks it.
#
# Layout in flash (folder "outbox"):
#   NNNNNNNNNN.seg  append-only records "<crc32 hex8> <signed rating json>\n", the file
#                   named after the first sequence number it may hold
#   NNNNNNNNNN.ack  append-only acked sequence numbers, one per line
# A segment is never appended to after a reboot (a torn tail could glue onto the next
# record), and both files go only once every record in a closed segment is acked.
# A record whose CRC or JSON does not check out is skipped and counted, never sent.
import os
import json
import binascii

DIR = "outbox"
SEG_RECORDS = 32


def _name(first, ext):
    return DIR + "/%010d.%s" % (first, ext)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _mkdir(path):
    if not _exists(path):
        os.mkdir(path)


def _crc(data):
    return "%08x" % (binascii.crc32(data) & 0xFFFFFFFF)


class Outbox:
    def __init__(self):
        _mkdir(DIR)
        self.corrupt = 0  # records skipped since boot
        self._active = None  # first seq of the segment being appended to
        self._active_n = 0
        self._f = None
        # per segment: [first, records, acked set or None when not loaded]
        self._segs = []
        names = sorted(n for n in os.listdir(DIR) if n.endswith(".seg"))
        for n in names:
            first = int(n[:10])
            self._segs.append([first, None, None])
        for s in self._segs:
            self._load(s)
        self._collect()

    # -- reading -------------------------------------------------------------------
    def _records(self, first, count=False):
        """Yield (seq, payload bytes) of the valid records of one segment; with count,
        add the bad ones to self.corrupt (done once per segment, at boot)."""
        try:
            f = open(_name(first, "seg"), "rb")
        except OSError:
            return
        with f:
            while True:
                line = f.readline()
                if not line:
                    break
                seq = None
                body = line[9:-1]
                if line[-1:] == b"\n" and line[8:9] == b" " and _crc(body).encode() == line[:8]:
                    try:
                        seq = json.loads(body)["seq"]
                    except (ValueError, KeyError, TypeError):
                        pass
                if not isinstance(seq, int):
                    if count:
                        self.corrupt += 1
                    continue
                yield seq, body

    def _acked(self, first):
        acked = set()
        try:
            f = open(_name(first, "ack"), "rb")
        except OSError:
            return acked
        with f:
            for line in f:
                try:
                    acked.add(int(line))
                except ValueError:
                    pass  # a torn ack line: that rating is simply resent and re-acked
        return acked

    def _load(self, s):
        s[2] = self._acked(s[0])
        n = 0
        for seq, _ in self._records(s[0], True):
            if seq not in s[2]:
                n += 1
        s[1] = n

    def max_seq(self):
        top = 0
        for s in self._segs:
            for seq, _ in self._records(s[0]):
                if seq > top:
                    top = seq
        return top

    def pending(self, limit, skip=()):
        """Up to `limit` unacked (seq, payload) pairs, oldest first, not in `skip`."""
        out = []
        for s in self._segs:
            if not s[1]:
                continue
            for seq, body in self._records(s[0]):
                if seq in s[2] or seq in skip:
                    continue
                out.append((seq, body))
                if len(out) >= limit:
                    return out
        return out

    def depth(self):
        return sum(s[1] for s in self._segs)

    # -- writing -------------------------------------------------------------------
    def append(self, seq, body):
        """Store one signed rating; returns only when it is flushed to flash."""
        if self._f is None or self._active_n >= SEG_RECORDS:
            self._close_active()
            self._active = seq
            self._active_n = 0
            self._f = open(_name(seq, "seg"), "ab")
            self._segs.append([seq, 0, set()])
        self._f.write(_crc(body).encode() + b" " + body + b"\n")
        self._f.flush()  # the unix port's flush is fsync; on the ESP32 it commits to flash
        self._active_n += 1
        self._segs[-1][1] += 1

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
        found = False
        for q, _ in self._records(seg[0]):
            if q == seq:
                found = True
                break
        if not found:
            return False
        with open(_name(seg[0], "ack"), "ab") as f:
            f.write(b"%d\n" % seq)
        seg[2].add(seq)
        seg[1] -= 1
        self._collect()
        return True

    def _close_active(self):
        if self._f is not None:
            self._f.close()
            self._f = None
        self._collect()

    def _collect(self):
        # delete fully acked segments, except the one still being appended to
        keep = []
        for s in self._segs:
            if s[1] == 0 and not (self._f is not None and s[0] == self._active):
                for ext in ("seg", "ack"):
                    try:
                        os.remove(_name(s[0], ext))
                    except OSError:
                        pass
            else:
                keep.append(s)
        self._segs = keep
