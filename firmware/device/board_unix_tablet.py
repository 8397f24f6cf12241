# The unix board as the tablet (config "model": "tablet"): the same simulator link,
# clock, Wi-Fi, speaker and watchdog as board_unix.py, with the canvas and the touch
# screen instead of the OLED and the five buttons. The simulator taps with
# {"touch": [x, y]}; {"screen": true} writes the canvas, 300 KB, to screen.rgb565 in the
# flash folder rather than through the socket.
import os

import board_unix
from canvas import H, W, Canvas
from touch import Touch


class Board(board_unix.Board):
    model = "tablet"

    def _ui(self, cfg):
        self.touch = Touch(cfg["min_gap_ms"])
        self.canvas = Canvas(cfg["font_large"])

    def _ui_tasks(self):
        pass  # the canvas has nothing to scroll

    def _input(self, msg):
        t = msg.get("touch")
        if isinstance(t, list) and len(t) == 2 and all(isinstance(v, int) for v in t) \
                and not self.touch.accept(t[0], t[1]):
            self.event("ignored", touch=t)

    def _send_screen(self):
        with open("screen.rgb565", "wb") as f:  # the panel's bytes, as the ESP32 sends them
            f.write(self.canvas.buf)
        self.event("screen", file=os.getcwd() + "/screen.rgb565", w=W, h=H)

    def show_screen(self, lines, targets):
        """The canvas is drawn: what it says and what can be tapped where."""
        self.event("display", lines=lines, targets=targets)

    def _mark(self, offline):
        self.canvas.mark(offline)
