# Small persistent values in flash: the sequence-number reservation and the boot count.
# Each file is replaced atomically (write a temporary file, then rename), so a power cut
# leaves either the old or the new value, never a torn one.
import os

SEQ_BLOCK = 64  # seqs reserved per flash write: fewer writes, gaps after a reboot are allowed
SEQ_MAX = 2147483647  # protocol.md: seq is 1 .. 2^31-1
SKIP_FIRST = 256  # the first jump past a taken seq; each further one doubles, up to SKIP_MAX
SKIP_MAX = 1 << 20


def read_int(path, default=0):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def write_int(path, value):
    write_text(path, str(value))


def write_text(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
    os.rename(tmp, path)


class Counters:
    def __init__(self, floor=0):
        # floor: the highest seq still in the outbox, in case "seq" was lost
        self.boot = read_int("boot") + 1
        write_int("boot", self.boot)
        self._next = max(read_int("seq"), floor) + 1
        self._reserved = self._next - 1
        self._skip = 0  # the last jump's size, this boot
        self._skip_from = 0  # seqs below this were numbered before the last jump

    def next_seq(self):
        """A sequence number never used before on this device, even across power cuts."""
        seq = self._next
        if seq > self._reserved:
            self._reserved = seq + SEQ_BLOCK - 1
            write_int("seq", self._reserved)
        self._next = seq + 1
        return seq

    def skip_past(self, seq):
        """The gateway holds rating `seq` because another rating already has its ID: this
        device's counter went back (flash restored, replaced) or someone signs with its
        key. Number on from well beyond it, so that the next ratings are not held too.
        The jump doubles while ratings numbered after the last one are still held, so a
        counter far behind catches up in a few ratings."""
        if seq < self._skip_from:
            return  # numbered before the last jump, which covered it
        self._skip = min(self._skip * 2, SKIP_MAX) if self._skip else SKIP_FIRST
        nxt = min(seq + self._skip, SEQ_MAX - SKIP_MAX)
        if nxt > self._next:
            self._next = nxt
            self._reserved = nxt - 1  # the next rating writes the new reservation
        self._skip_from = self._next
