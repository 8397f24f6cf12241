# Staging an update (protocol.md section 12): the manifest of the build the signed
# command named, checked against its hash, then each file fetched over MQTT (D/fw/req ->
# D/fw) or copied from the running slot, checked against the manifest, into the slot
# not running. Loaded only when an update is carried out: the rest of the time a device
# keeps this code out of its RAM (update.py is what every boot loads).
import asyncio
import binascii
import hashlib
import json
import os

import outbox
import proto
from update import MANIFEST, _is_hex64

CHUNK_WAIT_MS = 5000  # a chunk not answered in this is asked for again
CHUNK_TRIES = 6
OUTBOX_RESERVE = 700000  # flash an update leaves free: the outbox at its capacity (outbox.py)
MAX_FILES = 64
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


class UpdateError(Exception):
    pass


def sha256(path, buf):
    """A file's SHA-256 as hex, or None if it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(buf if n == len(buf) else buf[:n])
    except OSError:
        return None
    return binascii.hexlify(h.digest()).decode()


def content_hash(entries):
    """A build's content hash over its files' names and SHA-256s (firmware/build.py)."""
    h = hashlib.sha256()
    for name in sorted(entries):
        h.update(name.encode() + b"\0" + entries[name].encode() + b"\n")
    return binascii.hexlify(h.digest()).decode()


def _safe_name(n):
    return (isinstance(n, str) and 0 < len(n) <= 40 and n[0] != "." and not n.endswith(".part")
            and all(c in NAME_CHARS for c in n))


def check_manifest(m, want_hash, model):
    """The files of a fetched manifest, if it is the build the signed command named and
    a build for this device's model (a tablet's build would not drive five buttons)."""
    files, boot = m.get("files"), m.get("boot", {})
    if not isinstance(files, dict) or not isinstance(boot, dict) or not files or len(files) > MAX_FILES:
        raise UpdateError("manifest lists no files")
    for n, h in list(files.items()) + list(boot.items()):
        if not _safe_name(n) or n == MANIFEST or not _is_hex64(h):
            raise UpdateError("manifest names a bad file")
    entries = dict(boot)
    entries.update(files)
    if content_hash(entries) != want_hash or m.get("content_hash") != want_hash:
        raise UpdateError("manifest does not match the signed hash")
    if m.get("firmware") != "pingjia-evaluator" or "app.mpy" not in files and "app.py" not in files:
        raise UpdateError("not an evaluator build")
    built_for = m.get("model", "five-button")  # builds from before the tablet are the five-button's
    if built_for != model:
        raise UpdateError("a build for the %s model" % built_for)
    box = m.get("outbox") or {}
    if box.get("writes") not in outbox.READS or outbox.writes(model) not in (box.get("reads") or ()):
        raise UpdateError("outbox format: build writes %r, reads %r" % (box.get("writes"), box.get("reads")))
    return files


class Stager:
    def __init__(self, ev, slot):
        self.ev = ev
        self.slot = slot
        self._want = None  # (hash, file, off) of the chunk awaited
        self._chunk = None
        self._got = asyncio.Event()
        self._buf = bytearray(512)

    async def stage(self, want, target):
        try:
            os.mkdir(target)
        except OSError:
            pass  # there from an earlier version or an interrupted update
        part = target + "/" + MANIFEST + ".part"
        await self._fetch(want, MANIFEST, part)
        with open(part) as f:
            m = json.load(f)
        if not isinstance(m, dict):
            raise UpdateError("manifest is not an object")
        files = check_manifest(m, want, self.ev.board.model)
        buf = self._buf
        for name, h in files.items():
            path = target + "/" + name
            if sha256(path, buf) == h:
                continue  # there already: a resumed update, or unchanged since that version
            if sha256(self.slot + "/" + name, buf) == h:
                self._copy(self.slot + "/" + name, path + ".part")
            else:
                await self._fetch(want, name, path + ".part")
            if sha256(path + ".part", buf) != h:
                raise UpdateError(name + " does not match the manifest")
            os.rename(path + ".part", path)
        for name in os.listdir(target):
            if name not in files and name != MANIFEST + ".part":
                os.remove(target + "/" + name)  # a stale module would be imported
        os.rename(part, target + "/" + MANIFEST)

    def _copy(self, src, dst):
        buf = self._buf
        with open(src, "rb") as f, open(dst, "wb") as out:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                out.write(buf if n == len(buf) else buf[:n])

    async def _fetch(self, want, name, dest):
        """One file of the build from the gateway, chunk by chunk, into dest."""
        off, size = 0, None
        with open(dest, "wb") as f:
            while size is None or off < size:
                c = await self._ask(want, name, off)
                size = c["size"]
                data = binascii.a2b_base64(c["data"])
                if not data and off < size:
                    raise UpdateError("empty chunk of " + name)
                if size - off + OUTBOX_RESERVE > self._free():
                    raise UpdateError("no room in flash for " + name)
                f.write(data)
                off += len(data)
                self.ev.supervisor.alive("link")

    def _free(self):
        try:
            s = os.statvfs("/")
            return s[0] * s[3]
        except (OSError, AttributeError):
            return 1 << 30

    async def _ask(self, want, name, off):
        ev = self.ev
        req = proto.encode({"v": 1, "dev": ev.dev, "hash": want, "file": name, "off": off})
        for _ in range(CHUNK_TRIES):
            self._want = (want, name, off)
            self._chunk = None
            self._got.clear()
            await ev.link.mqtt.publish(ev.topic("fw/req"), req, 0)
            try:
                await asyncio.wait_for_ms(self._got.wait(), CHUNK_WAIT_MS)
            except asyncio.TimeoutError:
                continue
            c = self._chunk
            if c is not None:
                if c.get("error"):
                    raise UpdateError("gateway: " + str(c["error"])[:60])
                return c
        raise UpdateError("the gateway did not send " + name)

    def on_chunk(self, msg):
        """A D/fw message: the chunk awaited, or nothing (a late or stray one)."""
        if self._want is None or (msg.get("hash"), msg.get("file"), msg.get("off")) != self._want:
            return
        if not msg.get("error") and not (isinstance(msg.get("size"), int) and isinstance(msg.get("data"), str)):
            return
        self._want = None
        self._chunk = msg
        self._got.set()
