# The heartbeat: the device's health, at each connect and every HEARTBEAT_S seconds
# (protocol.md section 7).
import asyncio

import proto
import records

HEARTBEAT_S = 60


class Health:
    def __init__(self, ev):
        self.ev = ev
        self.sent = 0  # heartbeats published this boot

    async def send(self):
        ev = self.ev
        board, link = ev.board, ev.link
        free, block = board.heap()
        oldest = ev.outbox.pending(1)
        oldest = oldest and records.decode(ev.dev, *oldest[0])
        age = max(0, board.time() - oldest["ts"]) // 1000 if oldest else 0
        msg = {
            "v": 1, "dev": ev.dev, "fw": ev.fw, "model": board.model, "up": ev.uptime(),
            "boot": ev.counters.boot, "reset": ev.reset, "rssi": board.rssi(), "heap_free": free,
            "heap_block": block, "outbox": ev.outbox.depth(), "oldest_s": age,
            "reconnects": link.reconnects - 1, "corrupt": ev.outbox.corrupt, "held": ev.messages.held,
            "errors": link.mqtt.handler_errors, "tsync": ev.tsync, "ts": board.time()}
        msg.update(ev.updater.report())
        await link.mqtt.publish(ev.topic("health"), proto.encode(msg), 0)
        self.sent += 1

    async def run(self):
        ev = self.ev
        while True:
            ev.supervisor.alive("heartbeat")
            await asyncio.sleep(HEARTBEAT_S)
            if ev.link.mqtt.connected:
                try:
                    await self.send()
                except OSError:
                    pass
