"""The device's outbox and counters, run by the real MicroPython unix port."""


from .conftest import run_device_code

APPEND_5 = """
import json
from outbox import Outbox
from state import Counters
o = Outbox()
c = Counters(floor=o.max_seq())
for i in range(5):
    s = c.next_seq()
    o.append(s, json.dumps({"seq": s, "n": i}).encode())
print(json.dumps([c.boot, o.depth(), [q for q, _ in o.pending(10)]]))
"""


def test_ratings_survive_a_reboot_and_seqs_never_repeat(tmp_path):
    first = run_device_code(APPEND_5, tmp_path)[0]
    second = run_device_code(APPEND_5, tmp_path)[0]
    assert first == [1, 5, [1, 2, 3, 4, 5]]
    boot, depth, seqs = second
    assert boot == 2 and depth == 10
    assert seqs[:5] == [1, 2, 3, 4, 5] and len(set(seqs)) == 10 and min(seqs[5:]) > 5


def test_acked_segments_are_deleted_and_acks_survive_reboot(tmp_path):
    out = run_device_code("""
import json, os
from outbox import Outbox, SEG_RECORDS
o = Outbox()
n = SEG_RECORDS * 2 + 3
for s in range(1, n + 1):
    o.append(s, json.dumps({"seq": s}).encode())
for s in range(1, SEG_RECORDS + 2):
    o.ack(s)
print(json.dumps([o.depth(), len(os.listdir("outbox")), o.ack(1)]))
o2 = Outbox()
print(json.dumps([o2.depth(), o2.pending(1)[0][0]]))
""", tmp_path)
    n_left = 32 * 2 + 3 - 33
    assert out[0][0] == n_left and out[0][2] is False  # acking twice is a no-op
    assert out[0][1] == 3  # first segment gone; second (.seg + .ack) and third (.seg) remain
    assert out[1] == [n_left, 34]


def test_torn_and_corrupt_records_are_skipped_never_sent(tmp_path):
    run_device_code(APPEND_5, tmp_path)
    seg = sorted((tmp_path / "outbox").glob("*.seg"))[0]
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n": 1', b'"n": 7')  # a flipped bit: CRC no longer matches
    seg.write_bytes(b"".join(lines) + lines[2][:15])  # and a torn record at the tail
    out = run_device_code("""
import json
from outbox import Outbox
o = Outbox()
got = o.pending(10)
print(json.dumps([[s for s, _ in got], o.corrupt, [json.loads(b)["n"] for _, b in got]]))
""", tmp_path)
    seqs, corrupt, ns = out[0]
    assert seqs == [1, 3, 4, 5] and ns == [0, 2, 3, 4]
    assert corrupt == 2  # each bad record counted once, however often the outbox is read
