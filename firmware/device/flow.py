# The citizen's flow: what the screen shows, a press, a reason for a bad review, and the
# rating stored in flash. A rating is confirmed to the citizen only once it is flushed
# to the outbox; the link (link.py) takes it from there.
import asyncio
import time

import proto
import records

UI_TICK_MS = 5000  # the flow checks in at least this often while waiting for a press
LEVEL_NAMES = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")  # button order
REASON_SCREEN = ("请选择原因", "1态度  2效率", "3材料  4跑腿", "5未兑现承诺")  # proto.REASONS order


class Flow:
    def __init__(self, ev, reason_timeout_s):
        self.ev = ev
        self.board = ev.board
        self.reason_timeout_s = reason_timeout_s
        self.greeted = None  # the case the citizen was last asked to rate, aloud

    def show_idle(self):
        s = self.ev.session
        if s and s.get("case") and s["case"] != self.ev.rated_case:
            self.board.show((s.get("item_name") or "", "办件 " + s["case"],
                             "工号 " + (s.get("staff_id") or "") + " " + (s.get("staff_name") or ""),
                             "请评价"))
            if s["case"] != self.greeted:  # once a case: a session is sent again at each reconnect
                self.greeted = s["case"]
                self.say("welcome")
        else:
            self.board.show(("欢迎评价", "窗口 " + (s.get("window") or "") if s else "", "", ""))

    def say(self, prompt):
        if self.ev.voice:
            self.ev.voice.say(prompt)

    def show_full(self):
        self.board.event("full", depth=self.ev.outbox.depth())
        self.board.show(("暂停评价", "存储已满", "请联系工作人员", ""))

    async def press(self):
        """The next press as (button, ticks when pressed), checking in while waiting."""
        while True:
            self.ev.supervisor.alive("ui")
            try:
                return await asyncio.wait_for_ms(self.board.buttons.get(), UI_TICK_MS)
            except asyncio.TimeoutError:
                pass

    async def run(self):
        while True:
            b, t0 = await self.press()
            self.board.confirm(b)  # LED and buzzer at once: the press was felt
            case = self.may_rate()
            if case is None:
                continue
            reason = 0  # no reason asked: a good review
            if proto.LEVELS[b - 1] in proto.BAD:
                reason, t0 = await self.ask_reason()
            ev = self.ev
            self.commit(b, case, records.reasons(reason), None, t0,
                        records.encode(b, reason, self.board.time(), ev.tsync, ev.uptime(), case))

    def may_rate(self):
        """The case a press now rates ("" with no session), or None, with the screen saying
        why, for a case rated already or a full outbox. Taken at the press: a session that
        changes while the citizen picks a reason does not move the rating to the next case."""
        ev = self.ev
        case = (ev.session or {}).get("case") or ""
        if case and case == ev.rated_case:
            self.board.event("already_rated", case=case)
            self.show_rated(case)
            return None
        if ev.outbox.is_full():
            self.show_full()
            return None
        return case

    def show_rated(self, case):
        self.board.show(("该办件已评价", "办件 " + case, "", ""))

    def show_thanks(self, button):
        self.board.show(("谢谢您的评价", LEVEL_NAMES[button - 1], "", ""))

    def commit(self, button, case, reasons, parts, t0, record):
        """Store the rating's record (records.py), then confirm it."""
        ev = self.ev
        try:
            seq = self.store(record)
        except OSError:
            self.show_full()  # not stored, so not confirmed: the citizen sees it failed
            return
        ev.rated_case = case or None
        # the confirmation follows the flush: a rating the citizen saw confirmed is in flash
        self.show_thanks(button)
        self.say("thanks")
        self.board.event("confirmed", seq=seq, boot=ev.counters.boot, level=proto.LEVELS[button - 1], case=case,
                         reason=reasons, parts=parts, ms=time.ticks_diff(time.ticks_ms(), t0))
        ev.link.wake.set()

    async def ask_reason(self):
        """(reason index 1..5, or -1 for the timeout's explicit "none"; ticks of the press)."""
        self.board.show(REASON_SCREEN)
        self.say("reason")
        self.board.event("reason")
        self.ev.supervisor.alive("ui")
        try:
            b, t = await asyncio.wait_for(self.board.buttons.get(), self.reason_timeout_s)
        except asyncio.TimeoutError:
            return -1, time.ticks_ms()  # recorded explicitly: the citizen gave no reason
        self.board.confirm(b)
        return b, t

    def store(self, record):
        """Flush one rating to flash as a compact record (records.py); returns its seq."""
        ev = self.ev
        seq = ev.counters.next_seq()
        ev.outbox.append(seq, record, ev.header)
        return seq
