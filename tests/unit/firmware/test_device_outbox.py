"""The device's outbox and counters, run by the real MicroPython unix port."""

from tests.conftest import run_device_code

APPEND_5 = """
import json
from outbox import Outbox
from state import Counters
o = Outbox()
last = o.last()
c = Counters(floor=last[0] if last else 0)
for i in range(5):
    s = c.next_seq()
    o.append(s, b"n%d" % i, b"%d,fw" % c.boot)
print(json.dumps([c.boot, o.depth(), [q for q, _, _ in o.pending(10)]]))
"""


def test_ratings_survive_a_reboot_and_seqs_never_repeat(tmp_path):
    first = run_device_code(APPEND_5, tmp_path)[0]
    second = run_device_code(APPEND_5, tmp_path)[0]
    assert first == [1, 5, [1, 2, 3, 4, 5]]
    boot, depth, seqs = second
    assert boot == 2 and depth == 10
    assert seqs[:5] == [1, 2, 3, 4, 5] and len(set(seqs)) == 10 and min(seqs[5:]) > 5
    # each boot writes its own segment, whose header its records share
    out = run_device_code("""
import json
from outbox import Outbox
print(json.dumps([[q, p.decode(), h.decode()] for q, p, h in Outbox().pending(10)]))
""", tmp_path)[0]
    assert [h for _, _, h in out] == ["1,fw"] * 5 + ["2,fw"] * 5
    assert [p for _, p, _ in out] == ["n0", "n1", "n2", "n3", "n4"] * 2


def test_acked_segments_are_deleted_and_acks_survive_reboot(tmp_path):
    out = run_device_code("""
import json, os
import outbox
from outbox import Outbox
outbox.SEG_BYTES = 300  # small segments, so the test spans several
o = Outbox()
for s in range(1, 41):
    o.append(s, b"payload-%03d" % s, b"1,fw")
segs = sorted(os.listdir("outbox.d"))
per = len([1 for _ in o._records(int(segs[0][:10]))])
for s in range(1, per + 2):
    o.ack(s)
print(json.dumps([per, segs, o.depth(), sorted(os.listdir("outbox.d")), o.ack(1)]))
o2 = Outbox()
print(json.dumps([o2.depth(), o2.pending(1)[0][0]]))
""", tmp_path)
    per, segs, depth, listing, again = out[0]
    assert len(segs) > 2 and depth == 40 - per - 1
    # the first segment is gone; the second has its .ack beside it
    assert listing == sorted(segs[1:] + [segs[1][:10] + ".ack"])
    assert again is False  # acking twice is a no-op
    assert out[1] == [40 - per - 1, per + 2]


def test_torn_and_corrupt_records_are_skipped_never_sent(tmp_path):
    run_device_code(APPEND_5, tmp_path)
    seg = sorted((tmp_path / "outbox.d").glob("*.seg"))[0]
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"n1", b"n7")  # a flipped bit: the CRC no longer matches
    seg.write_bytes(b"".join(lines) + lines[3][:12])  # and a torn record at the tail
    out = run_device_code("""
import json
from outbox import Outbox
o = Outbox()
got = o.pending(10)
print(json.dumps([[s for s, _, _ in got], o.corrupt, [p.decode() for _, p, _ in got]]))
""", tmp_path)
    seqs, corrupt, payloads = out[0]
    assert seqs == [1, 3, 4, 5] and payloads == ["n0", "n2", "n3", "n4"]
    assert corrupt == 2  # each bad record counted once, however often the outbox is read


def test_a_failed_write_closes_the_segment_so_no_record_glues_onto_a_torn_one(tmp_path):
    out = run_device_code("""
import json, os
from outbox import Outbox
o = Outbox()
o.append(1, b"a", b"1,fw")
class Broken:
    def write(self, b):
        raise OSError(28)  # ENOSPC
    def flush(self):
        pass
    def close(self):
        pass
o._f = Broken()
try:
    o.append(2, b"b", b"1,fw")
    print(json.dumps("stored"))
except OSError:
    print(json.dumps("refused"))
o.append(3, b"c", b"1,fw")
print(json.dumps([sorted(os.listdir("outbox.d")), [q for q, _, _ in o.pending(9)]]))
""", tmp_path)
    assert out[0] == "refused"
    files, seqs = out[1]
    assert files == ["0000000001.seg", "0000000003.seg"] and seqs == [1, 3]


def test_a_header_that_does_not_check_out_takes_no_record_with_it_unseen(tmp_path):
    run_device_code(APPEND_5, tmp_path)
    seg = sorted((tmp_path / "outbox.d").glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[10] ^= 1  # the header line
    seg.write_bytes(bytes(data))
    out = run_device_code("""
import json
from outbox import Outbox
o = Outbox()
print(json.dumps([len(o.pending(10)), o.corrupt]))
""", tmp_path)
    assert out[0] == [0, 6]  # nothing sent with a header it cannot trust, all counted


def test_10000_ratings_fit_in_1_mb_of_littlefs_and_read_back(tmp_path):
    from simulator.bench.firmware import _outbox
    cap = _outbox("capacity", tmp_path)
    assert cap["capacity"] >= 10000
    assert cap["depth"] == cap["capacity"] and cap["corrupt"] == 0  # after a reboot, all of them
