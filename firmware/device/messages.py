# Messages from the gateway, each checked against the device's key first: acks (the
# gateway has a rating), the window's session (what to show), the time, commands, a
# tablet's staff photo. The chunks of an update (D/fw) and of a photo (D/photo/chunk) are
# the exception: unsigned, since each is checked against a hash a signed message named.
import asyncio
import json
import os

INTENT_FILE = "reboot.intent"  # written before a reboot the device chose, read at boot
DROP_ON = ("stored", "duplicate", "held")  # acks that say the gateway has the rating
KINDS = ("ack", "session", "time", "cmd", "photo")


def reset_cause(board):
    """(the last reset's cause, the command that asked for it or None). The intent file
    names that command, so that the command, delivered again by the broker, does not
    reboot the device again."""
    try:
        with open(INTENT_FILE) as f:
            cmd = f.read()
        os.remove(INTENT_FILE)
        return "intended", cmd
    except OSError:
        return board.reset_cause(), None


class Messages:
    def __init__(self, ev, last_cmd):
        self.ev = ev
        self.board = ev.board
        self.held = 0  # ratings the gateway stored but holds for an admin, since boot
        self.last_cmd = last_cmd

    def handle(self, topic, payload):
        ev = self.ev
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        kind = topic.rsplit("/", 1)[-1]
        if kind == "fw" and msg.get("dev") == ev.dev:
            ev.updater.on_chunk(msg)
            return
        if kind == "chunk" and ev.photo and msg.get("dev") == ev.dev:  # D/photo/chunk: checked by its hash
            ev.photo.on_chunk(msg)
            return
        signed = "update" if kind == "cmd" and msg.get("cmd") == "update" else kind  # its own fields
        if kind not in KINDS or msg.get("dev") != ev.dev or not ev.signer.verify(signed, msg):
            self.board.event("bad_message", topic=topic)
            return
        if kind == "ack":
            self.on_ack(msg)
        elif kind == "session":
            ev.session = msg
            if msg.get("rated") and msg.get("case"):
                ev.rated_case = msg["case"]  # rated before, perhaps before a reboot
            self.board.event("session", case=msg.get("case") or "", window=msg.get("window"))
            ev.flow.show_idle()
        elif kind == "photo":
            if ev.photo:
                ev.photo.on_announce(msg)
        elif kind == "time":
            if msg.get("id") == ev.link.time_req and isinstance(msg.get("now"), int):
                self.board.set_time(msg["now"])
                ev.tsync = True
                self.board.event("synced")
        else:
            self.on_command(msg)

    def on_ack(self, msg):
        seq = msg.get("seq")
        status = msg.get("status")
        if not isinstance(seq, int) or status not in DROP_ON:
            return  # whatever else it says, the rating stays until the gateway has it
        if status == "held":
            self.held += 1
            self.board.event("held", seq=seq, reason=msg.get("reason"))
            if msg.get("reason") == "seq_taken":
                self.ev.counters.skip_past(seq)
        if self.ev.link.acked(seq):
            self.board.event("acked", seq=seq, status=status)

    def on_command(self, msg):
        cmd = msg.get("cmd")
        if cmd == "reboot" and str(msg.get("id")) != self.last_cmd:
            self.last_cmd = str(msg.get("id"))
            asyncio.create_task(self.reboot(self.last_cmd))
        elif cmd == "heartbeat":
            asyncio.create_task(self.ev.health.send())
        elif cmd == "sync_time":
            asyncio.create_task(self.ev.link.request_time())
        elif cmd == "update":
            self.ev.updater.command(msg)

    async def reboot(self, cmd_id):
        with open(INTENT_FILE, "w") as f:
            f.write(cmd_id)
        await asyncio.sleep_ms(500)  # let the command's PUBACK go out first
        self.board.reboot()
