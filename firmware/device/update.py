# Over-the-air updates (protocol.md section 12). The gateway's signed `update` command
# names a build by its content hash; the device fetches the build's manifest and files
# over MQTT (D/fw/req -> D/fw), checks the manifest against the hash and every file
# against the manifest, stages them in the slot it does not run (staging.py, loaded for
# that alone) and switches to that slot on trial (slots.py). The new version commits itself once it has reached the
# gateway: connected, clock synced, a heartbeat out, the outbox draining. One that cannot
# within trial_s reboots, and main.py rolls it back. The outbox is outside the slots and
# is never touched; a build says which outbox formats it reads and writes, and one that
# could not read this outbox, or whose outbox this version could not read after a
# rollback, is refused.
import asyncio
import json
import time

import proto
import slots
from state import read_int, write_int

MANIFEST = "manifest.json"
LAST_AT = "update.at"  # the newest update command taken: an older one is a replay


def manifest(slot):
    """A slot's manifest, or {} if it has none that reads."""
    try:
        with open(slot + "/" + MANIFEST) as f:
            m = json.load(f)
        return m if isinstance(m, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_hex64(s):
    return isinstance(s, str) and len(s) == 64 and all(c in "0123456789abcdef" for c in s)


class Updater:
    def __init__(self, ev, slot, trial, trial_s):
        self.ev = ev
        self.slot = slot
        self.trial = trial
        self.trial_s = trial_s
        m = manifest(slot)
        self.hash = m.get("content_hash") or ""
        self.version = m.get("version") or ev.fw
        self.rolled_back = (slots.read() or {}).get("rolled_back")
        self.job = None  # the update command being carried out
        self.stager = None  # staging.py's, while one is

    def report(self):
        """What the status and the heartbeat say of the firmware (protocol.md section 7)."""
        out = {"fwh": self.hash}
        if self.trial:
            out["trial"] = True
        rb = self.rolled_back
        if isinstance(rb, dict):
            out["rolled_back"] = {"hash": rb.get("hash"), "cmd": str(rb.get("cmd"))[:32],
                                  "why": str(rb.get("why"))[:100]}
        return out

    # -- on trial: commit once healthy, or reboot for main.py to roll back -------------
    def healthy(self):
        ev = self.ev
        return (ev.link.mqtt.connected and ev.tsync and ev.health.sent > 0
                and (ev.outbox.depth() == 0 or ev.link.acks > 0))

    async def run_trial(self):
        t0 = time.ticks_ms()
        while not self.healthy():
            if time.ticks_diff(time.ticks_ms(), t0) > self.trial_s * 1000:
                self.ev.board.event("trial", ok=False)
                await self.ev.messages.reboot("trial")  # main.py rolls back at the next boot
            await asyncio.sleep_ms(500)
        st = slots.read()
        if st and st.get("trial") == self.slot:
            slots.write({"active": self.slot})
        self.trial = False
        self.rolled_back = None
        self.ev.board.event("trial", ok=True)
        await self.ev.health.send()  # the gateway sees the committed version now

    # -- the update command --------------------------------------------------------------
    def command(self, msg):
        want = msg.get("hash")
        if not _is_hex64(want):
            return self.reply(msg, False, "no hash")
        at = msg.get("at")
        if not isinstance(at, int) or at < read_int(LAST_AT):
            return self.reply(msg, False, "older than an update command already taken")
        if at > read_int(LAST_AT):
            write_int(LAST_AT, at)
        if want == self.hash:
            return self.reply(msg, True, "running")
        if self.trial:
            return self.reply(msg, False, "on trial")
        if self.job is not None:
            if self.job.get("hash") != want:
                self.reply(msg, False, "busy")
            return None
        self.job = msg
        self.rolled_back = None  # said; the gateway asks again knowing it
        asyncio.create_task(self._update(msg))

    def reply(self, msg, ok, detail):
        asyncio.create_task(self._reply(msg, ok, detail))

    async def _reply(self, msg, ok, detail):
        ev = self.ev
        try:
            await ev.link.mqtt.publish(ev.topic("cmd/reply"), proto.encode(
                {"v": 1, "dev": ev.dev, "id": msg.get("id"), "ok": ok, "detail": detail}), 1)
        except OSError:
            pass  # the link dropped: the gateway sends the command again

    async def _update(self, msg):
        try:
            from staging import Stager

            target = slots.other(self.slot)
            self.stager = Stager(self.ev, self.slot)
            await self.stager.stage(msg["hash"], target)
            slots.write({"active": self.slot, "trial": target, "tried": 0, "hash": msg["hash"],
                         "version": msg.get("version"), "cmd": msg.get("id")})
        except Exception as e:  # whatever the build was, the device must stay updatable
            self.job = self.stager = None
            self.ev.board.event("update", ok=False, why=str(e))
            return self.reply(msg, False, str(e)[:100])
        self.reply(msg, True, "staged")
        self.ev.board.event("update", ok=True, hash=msg["hash"])
        await self.ev.messages.reboot(str(msg.get("id")))

    def on_chunk(self, msg):
        """A D/fw message: for the update being staged, or nothing (a late or stray one)."""
        if self.stager is not None:
            self.stager.on_chunk(msg)
