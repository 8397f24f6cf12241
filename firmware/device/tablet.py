# The tablet's flow: the case on screen, the overall rating on five large levels, then
# optional itemised ratings and, for a bad review, its reasons (at least one), and a
# thank-you. What the five-button flow keeps (one rating per case, the flush before the
# thanks, a full outbox) comes from flow.py; only the screens and the taps are the
# tablet's.
#
# Every screen says what can be tapped where ("targets": name, x, y, w, h), which the
# hit test uses and the display event carries, so the simulator taps what a citizen sees.
# The details screens wait reason_timeout_s from the last tap, then send what was chosen:
# the level always was; no reason chosen for a bad review is recorded as "none".
import asyncio
import time

import proto
import tablet_records
from canvas import BLUE, GREY, INK, PALE, WHITE, W, rgb
from flow import LEVEL_NAMES, UI_TICK_MS, Flow

LEVEL_LINES = (("非常", "满意"), ("满意", ""), ("基本", "满意"), ("不满意", ""), ("非常", "不满意"))
LEVEL_COLOURS = (rgb(47, 158, 68), rgb(116, 184, 22), rgb(245, 159, 0), rgb(247, 103, 7), rgb(224, 49, 49))
MOODS = (2, 1, 0, -1, -2)
REASON_LABELS = ("态度不好", "效率太低", "材料繁琐", "多次跑腿", "未兑现承诺")  # proto.REASONS order
# the parts offered: the service item, the staff member, the channel (seed 003 art. 8),
# and two aspects (seed 000 art. 1); codes as protocol.md's
PARTS = (("item", "服务事项"), ("staff", "工作人员"), ("channel", "服务渠道"),
         ("attitude", "服务态度"), ("efficiency", "办事效率"))  # names as protocol/vectors/names.json
PART_LEVELS = ("很好", "好", "一般", "差", "很差")
BAND = 46
PHOTO = 96  # photo.SIZE, at the case screen's right


def level_button(name):
    return proto.LEVELS.index(name) + 1


class TabletFlow(Flow):
    def __init__(self, ev, reason_timeout_s, thanks_ms):
        Flow.__init__(self, ev, reason_timeout_s)
        self.thanks_ms = thanks_ms  # the thank-you stays this long, then the next case (or the welcome)
        self.c = self.board.canvas
        self.targets = []
        self.busy = False  # a citizen is choosing or being thanked: a new session waits its turn
        self._idle_due = False

    # -- drawing ----------------------------------------------------------------------
    def _begin(self):
        self.c.fill(WHITE)
        self.targets = []

    def _target(self, name, x, y, w, h):
        self.targets.append((name, x, y, w, h))

    def _band(self, text, colour=BLUE):
        self.c.box(0, 0, W, BAND, colour)
        self.c.text(self.c.fit(text, W - 40), 10, (BAND - self.c.font.size) // 2, WHITE, colour)
        if not self.board.online:
            self.c.mark(True)

    def _show(self, lines):
        self.board.show_screen(lines, self.targets)

    def _message(self, title, lines):
        self._begin()
        self._band(title)
        y = 80
        for t in lines:
            self.c.centred(t, 0, y, W, INK, WHITE)
            y += 44
        self._show((title,) + tuple(lines))

    def show_idle(self):
        if self.busy:  # the session (or photo) changed while a citizen is at the screen
            self._idle_due = True
            return
        self._idle_due = False
        s = self.ev.session or {}
        case = s.get("case") or ""
        if case and case == self.ev.rated_case:  # rated: nothing to offer until the next case
            self._message("欢迎评价", ("窗口 " + (s.get("window") or ""), ""))
            return
        # the case to rate; with none known yet (no case completed, or no gateway reached)
        # the levels are offered all the same, as the five buttons always are
        self._begin()
        c = self.c
        item = s.get("item_name") or "欢迎评价"
        staff = "工号 " + (s.get("staff_id") or "") + " " + (s.get("staff_name") or "") if s.get("staff_id") else ""
        self._band(item)
        px = self.ev.photo.of(s.get("staff_id")) if self.ev.photo else None
        room = W - 20 - (PHOTO + 8 if px else 0)
        if px:  # beside the staff member's name; the case number below takes the whole width
            c.image(px, W - PHOTO - 8, BAND + 4, PHOTO, PHOTO)
        c.text(c.fit(staff or ("窗口 " + (s.get("window") or "")), room), 10, BAND + 10, INK, WHITE)
        c.text("请对本次服务进行评价", 10, BAND + 52, BLUE, WHITE)
        if case:
            c.text(c.fit("办件 " + case, W - 20), 10, BAND + 104, INK, WHITE)
        top = 182
        for i in range(5):
            x = 2 + i * 96
            col = LEVEL_COLOURS[i]
            c.box(x, top, 92, 316 - top, col)
            c.face(x + 46, top + 30, 22, MOODS[i], WHITE, col)
            a, b = LEVEL_LINES[i]
            c.centred(a, x, top + 62, 92, WHITE, col)
            c.centred(b, x, top + 62 + c.font.size + 2, 92, WHITE, col)
            self._target("level:" + proto.LEVELS[i], x, top, 92, 316 - top)
        self._show((item, "办件 " + case if case else "", staff, "请评价", "photo" if px else ""))
        if case and case != self.greeted:  # once a case: a session is sent again at each reconnect
            self.greeted = case
            self.say("welcome")

    def show_full(self):
        self.board.event("full", depth=self.ev.outbox.depth())
        self._message("暂停评价", ("存储已满", "请联系工作人员"))

    def show_rated(self, case):
        self._message("该办件已评价", ("办件 " + case,))

    def show_thanks(self, button):
        self._begin()
        self._band("谢谢您的评价")
        col = LEVEL_COLOURS[button - 1]
        self.c.face(W // 2, 140, 50, MOODS[button - 1], col, WHITE)
        self.c.centred(LEVEL_NAMES[button - 1], 0, 210, W, INK, WHITE)
        self._show(("谢谢您的评价", LEVEL_NAMES[button - 1]))

    def _button(self, name, label, x, y, w, h, on):
        col = BLUE if on else PALE
        self.c.box(x, y, w, h, col)
        self.c.centred(label, x, y + (h - self.c.font.size) // 2, w, WHITE if on else GREY, col)
        if on:  # a greyed button is not a target: a tap there does nothing
            self._target(name, x, y, w, h)

    def _reasons_screen(self, button, tags):
        self._begin()
        self._band("请选择不满意的原因（至少一项）", LEVEL_COLOURS[button - 1])
        for i in range(5):
            x, y = 8 + (i % 3) * 156, 62 + (i // 3) * 76
            on = (i + 1) in tags
            self.c.box(x, y, 152, 64, BLUE if on else WHITE, BLUE)
            self.c.centred(REASON_LABELS[i], x, y + 18, 152, WHITE if on else INK, BLUE if on else WHITE)
            self._target("tag:" + proto.REASONS[i], x, y, 152, 64)
        self._button("parts", "分项评价", 8, 250, 220, 60, True)
        self._button("submit", "提交评价", 252, 250, 220, 60, bool(tags))
        self._show(("请选择不满意的原因", ",".join(proto.REASONS[t - 1] for t in sorted(tags))))

    def _parts_screen(self, button, parts, need_reason):
        self._begin()
        self._band("分项评价（可选）   " + LEVEL_NAMES[button - 1], LEVEL_COLOURS[button - 1])
        c = self.c
        for r in range(len(PARTS)):
            code, label = PARTS[r]
            y = BAND + 6 + r * 44
            c.text(label, 8, y + 6, INK, WHITE)
            for i in range(5):
                x = 128 + i * 70
                on = parts.get(code) == i + 1
                col = LEVEL_COLOURS[i] if on else PALE
                c.box(x, y, 66, 40, col)
                c.centred(PART_LEVELS[i], x, y + 6, 66, WHITE if on else INK, col)
                self._target("part:" + code + ":" + proto.LEVELS[i], x, y, 66, 40)
        if need_reason:  # a bad review goes only with a reason
            self._button("reasons", "选择原因", 300, 272, 172, 46, True)
        else:
            c.text("可不评，直接提交", 8, 284, GREY, WHITE)
            self._button("submit", "提交评价", 300, 272, 172, 46, True)
        self._show(("分项评价", ",".join(k + ":" + str(parts[k]) for k in sorted(parts))))

    # -- taps -------------------------------------------------------------------------
    def hit(self, x, y):
        for name, tx, ty, tw, th in self.targets:
            if tx <= x < tx + tw and ty <= y < ty + th:
                return name
        return None

    async def tap(self, timeout_ms=None):
        """The next tap on a target, as (name, ticks); checks in while waiting. With a
        timeout, None once it passes without a tap."""
        waited = 0
        while True:
            self.ev.supervisor.alive("ui")
            step = UI_TICK_MS if timeout_ms is None else min(UI_TICK_MS, timeout_ms - waited)
            if step <= 0:
                return None
            try:
                x, y, t = await asyncio.wait_for_ms(self.board.touch.get(), step)
            except asyncio.TimeoutError:
                waited += step
                continue
            name = self.hit(x, y)
            if name:
                return name, t
            self.board.event("miss", x=x, y=y)

    async def run(self):
        while True:
            got = await self.tap()
            name, t0 = got
            if not name.startswith("level:"):
                continue
            b = level_button(name[6:])
            self.board.confirm(b)
            case = self.may_rate()
            if case is None:
                continue
            self.busy = True
            try:
                tags, parts, t0 = await self.details(b, t0)
                reasons = [] if not tags else ["none"] if tags == [-1] else [proto.REASONS[t - 1] for t in tags]
                named = {k: proto.LEVELS[v - 1] for k, v in parts.items()} or None
                ev = self.ev
                self.commit(b, case, reasons, named, t0, tablet_records.encode(
                    b, tags, parts, self.board.time(), ev.tsync, ev.uptime(), case))
                await asyncio.sleep_ms(self.thanks_ms)
            finally:
                self.busy = False
            self.show_idle()

    async def details(self, button, t0):
        """The reasons (bad reviews) and the itemised parts: (tags, parts, ticks of the
        submitting tap). On the timeout, what was chosen; a bad review's no reason, [-1]."""
        bad = proto.LEVELS[button - 1] in proto.BAD
        tags, parts = [], {}
        screen = "reasons" if bad else "parts"
        if bad:
            self.say("reason")
        while True:
            if screen == "reasons":
                self._reasons_screen(button, tags)
            else:
                self._parts_screen(button, parts, bad and not tags)
            self.board.event("details", screen=screen)
            got = await self.tap(self.reason_timeout_s * 1000)
            if got is None:  # the citizen walked away: what was chosen goes
                return (sorted(tags) if tags else [-1] if bad else []), parts, time.ticks_ms()
            name, t = got
            if name == "submit":
                return sorted(tags), parts, t
            if name in ("parts", "reasons"):
                screen = name
            elif name.startswith("tag:"):
                i = proto.REASONS.index(name[4:]) + 1
                if i in tags:
                    tags.remove(i)
                else:
                    tags.append(i)
            elif name.startswith("part:"):
                code, level = name[5:].split(":")
                b = level_button(level)
                if parts.get(code) == b:
                    del parts[code]  # a second tap takes the choice back
                else:
                    parts[code] = b
