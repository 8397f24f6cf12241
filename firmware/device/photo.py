# The tablet's staff photo (protocol.md section 13): the gateway's signed `photo` message
# names, for the staff member signed in at the window, the SHA-256 of their picture as the
# canvas draws it (SIZE x SIZE RGB565); the pixels come chunk by chunk on D/photo/chunk,
# unsigned, into one preallocated buffer, and are shown only once they hash to the signed
# value. A photo that does not arrive, or does not check, is simply not shown.
import asyncio
import binascii
import hashlib

import proto

SIZE = 96
BYTES = SIZE * SIZE * 2
CHUNK_WAIT_MS = 5000
CHUNK_TRIES = 4


class Photo:
    def __init__(self, ev):
        self.ev = ev
        self.buf = bytearray(BYTES)
        self.staff = None  # whose photo buf holds, once it checked
        self.shown = None  # its hash
        self.want = None  # (staff, hash) the gateway last named
        self._task = None
        self._asked = None  # (hash, off) of the chunk awaited
        self._chunk = None
        self._got = asyncio.Event()
        self.failed = 0

    def of(self, staff_id):
        """The pixels of staff_id's photo, or None."""
        return self.buf if staff_id and self.staff == staff_id and self.shown else None

    def on_announce(self, msg):
        """A signed `photo` message (checked by messages.py)."""
        h, staff = msg.get("hash"), msg.get("staff_id")
        if not (isinstance(staff, str) and (h is None or isinstance(h, str) and len(h) == 64)):
            return
        self.want = (staff, h)
        if h is None:  # no photo of this staff member (any more)
            if self.shown:
                self.staff = self.shown = None
                self.ev.flow.show_idle()
            return
        if (staff, h) == (self.staff, self.shown):
            return
        if self._task is None:
            self._task = asyncio.create_task(self._fetch_wanted())

    def on_chunk(self, msg):
        if self._asked is None or (msg.get("hash"), msg.get("off")) != self._asked:
            return  # late, stray or forged: nothing waits for it
        if not (isinstance(msg.get("size"), int) and isinstance(msg.get("data"), str)):
            return
        self._chunk = msg
        self._got.set()

    async def _fetch_wanted(self):
        try:
            while self.want and self.want[1] and self.want != (self.staff, self.shown):
                staff, h = self.want
                self.staff = self.shown = None  # the buffer is being overwritten
                if await self._fetch(h) and self.want == (staff, h):
                    self.staff, self.shown = staff, h
                    self.ev.board.event("photo", staff=staff)
                    self.ev.flow.show_idle()
                elif self.want == (staff, h):
                    self.failed += 1
                    return  # the next announcement tries again
        finally:
            self._task = None

    async def _fetch(self, h):
        ev, off = self.ev, 0
        mv = memoryview(self.buf)
        while off < BYTES:
            c = await self._ask(h, off)
            if c is None or c["size"] != BYTES:
                return False
            try:
                data = binascii.a2b_base64(c["data"])
            except ValueError:
                return False
            if not data or off + len(data) > BYTES:
                return False
            mv[off:off + len(data)] = data
            off += len(data)
            ev.supervisor.alive("link")
        return binascii.hexlify(hashlib.sha256(self.buf).digest()).decode() == h

    async def _ask(self, h, off):
        ev = self.ev
        req = proto.encode({"v": 1, "dev": ev.dev, "hash": h, "off": off})
        for _ in range(CHUNK_TRIES):
            self._asked, self._chunk = (h, off), None
            self._got.clear()
            try:
                await ev.link.mqtt.publish(ev.topic("photo/req"), req, 0)
                await asyncio.wait_for_ms(self._got.wait(), CHUNK_WAIT_MS)
            except (asyncio.TimeoutError, OSError):
                continue
            if self._chunk is not None:
                self._asked = None
                return self._chunk
        self._asked = None
        return None
