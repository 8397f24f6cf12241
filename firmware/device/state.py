# Small persistent values in flash: the sequence-number reservation and the boot count.
# Each file is replaced atomically (write a temporary file, then rename), so a power cut
# leaves either the old or the new value, never a torn one.
import os

SEQ_BLOCK = 64  # seqs reserved per flash write: fewer writes, gaps after a reboot are allowed


def read_int(path, default=0):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def write_int(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(value))
        f.flush()
    os.rename(tmp, path)


class Counters:
    def __init__(self, floor=0):
        # floor: the highest seq still in the outbox, in case "seq" was lost
        self.boot = read_int("boot") + 1
        write_int("boot", self.boot)
        self._next = max(read_int("seq"), floor) + 1
        self._reserved = self._next - 1

    def next_seq(self):
        """A sequence number never used before on this device, even across power cuts."""
        seq = self._next
        if seq > self._reserved:
            self._reserved = seq + SEQ_BLOCK - 1
            write_int("seq", self._reserved)
        self._next = seq + 1
        return seq
