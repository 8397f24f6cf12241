# The 128x64 screen as a framebuffer, with the 16 px font from flash (firmware/font.py).
#
# Four lines of text. Glyphs are read from the font file one at a time into a preallocated
# buffer, so Chinese costs flash, not RAM. A line wider than the screen scrolls; a
# character missing from the font shows as a box. The top-right corner carries the
# offline mark while the link is down.
import framebuf
import struct

W, H = 128, 64
LINE_H = 16
SCROLL_STEP = 8  # pixels per scroll tick


class Font:
    def __init__(self, path="font.bin"):
        self.f = None
        try:
            self.f = open(path, "rb")
        except OSError:
            return  # no font in flash: ASCII only, from framebuf's built-in 8x8 font
        head = self.f.read(8)
        if head[:4] != b"PJF1":
            self.f = None
            return
        self.nh, self.nf = struct.unpack("<HH", head[4:])
        self._half_data = 8 + 2 * (self.nh + self.nf)
        self._full_data = self._half_data + 16 * self.nh
        self._idx = bytearray(2)
        self.half = bytearray(16)
        self.full = bytearray(32)
        self.half_fb = framebuf.FrameBuffer(self.half, 8, 16, framebuf.MONO_HLSB)
        self.full_fb = framebuf.FrameBuffer(self.full, 16, 16, framebuf.MONO_HLSB)

    def _find(self, table, n, cp):
        lo, hi = 0, n - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            self.f.seek(table + 2 * mid)
            self.f.readinto(self._idx)
            v = self._idx[0] | self._idx[1] << 8
            if v == cp:
                return mid
            if v < cp:
                lo = mid + 1
            else:
                hi = mid - 1
        return -1

    def glyph(self, cp):
        """(width, FrameBuffer) of one character, or (width, None) if the font lacks it."""
        if self.f is None:
            return (8, None) if cp < 0x80 else (16, None)
        i = self._find(8, self.nh, cp)
        if i >= 0:
            self.f.seek(self._half_data + 16 * i)
            self.f.readinto(self.half)
            return 8, self.half_fb
        i = self._find(8 + 2 * self.nh, self.nf, cp)
        if i >= 0:
            self.f.seek(self._full_data + 32 * i)
            self.f.readinto(self.full)
            return 16, self.full_fb
        return (8 if cp < 0x80 else 16), None


class Display:
    def __init__(self, font_path="font.bin"):
        self.buf = bytearray(W * H // 8)
        self.fb = framebuf.FrameBuffer(self.buf, W, H, framebuf.MONO_VLSB)
        self.font = Font(font_path)
        self.lines = ("", "", "", "")
        self._widths = [0, 0, 0, 0]
        self.offline = False
        self._scroll = 0
        self.wide = False  # some line is wider than the screen: the caller ticks scroll()

    def width(self, text):
        return sum(self.font.glyph(ord(c))[0] for c in text)

    def show(self, lines):
        self.lines = tuple(lines)[:4]
        self._widths = [self.width(t) for t in self.lines]  # measured once, not per scroll tick
        self._scroll = 0
        self.render()

    def set_offline(self, offline):
        """Show or clear the offline mark; True if the screen changed."""
        if self.offline == offline:
            return False
        self.offline = offline
        self.render()
        return True

    def scroll(self):
        """Advance long lines by one step; returns True if the screen changed."""
        if not self.wide:
            return False
        self._scroll += SCROLL_STEP
        self.render()
        return True

    def render(self):
        fb = self.fb
        fb.fill(0)
        self.wide = False
        for row, text in enumerate(self.lines):
            w = self._widths[row]
            x = 0
            if w > W:
                self.wide = True
                x = -(self._scroll % (w + 32))  # loop with a gap of two characters
            self._text(text, x, row * LINE_H)
            if w > W and x + w + 32 < W:
                self._text(text, x + w + 32, row * LINE_H)
        if self.offline:  # a crossed-out box in the corner: the link is down
            fb.fill_rect(W - 11, 0, 11, 11, 0)
            fb.rect(W - 10, 1, 9, 9, 1)
            fb.line(W - 10, 1, W - 2, 9, 1)
            fb.line(W - 10, 9, W - 2, 1, 1)

    def _text(self, text, x, y):
        for ch in text:
            if x >= W:
                return
            w, g = self.font.glyph(ord(ch))
            if x + w > 0:
                if g is not None:
                    self.fb.blit(g, x, y)
                elif self.font.f is None and ord(ch) < 0x80:
                    self.fb.text(ch, x, y + 4, 1)
                else:
                    self.fb.rect(x + 1, y + 2, w - 2, 12, 1)  # not in the font
            x += w
