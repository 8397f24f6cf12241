# The tablet's 480x320 screen as one RGB565 framebuffer (300 KB: PSRAM on the ESP32-S3),
# with the large anti-aliased font from flash (firmware/font.py, PJF2).
#
# The buffer holds pixels in the panel's byte order (big-endian RGB565), so the ESP32
# board sends it as it is and the simulator reads the same bytes (simulator/screen.py);
# colours are swapped once, in rgb(). A glyph is read from the font file into one
# preallocated buffer and blitted through a four-colour palette (background to ink),
# which framebuf does in C: Chinese costs flash, not RAM.
import framebuf
import struct

W, H = 480, 320


def rgb(r, g, b):
    c = (r & 0xF8) << 8 | (g & 0xFC) << 3 | b >> 3
    return (c & 0xFF) << 8 | c >> 8  # framebuf stores little-endian; the panel reads big-endian


WHITE = rgb(255, 255, 255)
BLACK = rgb(0, 0, 0)
INK = rgb(33, 37, 41)
GREY = rgb(134, 142, 150)
PALE = rgb(233, 236, 239)
BLUE = rgb(25, 113, 194)
OFF = rgb(73, 80, 87)


class LargeFont:
    def __init__(self, path):
        self.f = None
        self.size = 16
        try:
            self.f = open(path, "rb")
        except OSError:
            return  # no font in flash: boxes, but the tablet still rates
        head = self.f.read(10)
        if head[:4] != b"PJF2" or head[5] != 2:
            self.f = None
            return
        self.size, _, self.nh, self.nf = struct.unpack("<BBHH", head[4:])
        s = self.size
        self.half_w, self.half_len = s // 2, ((s // 2 + 3) // 4) * s
        self.full_len = ((s + 3) // 4) * s
        self._half_data = 10 + 2 * (self.nh + self.nf)
        self._full_data = self._half_data + self.half_len * self.nh
        self._idx = bytearray(2)
        self.half = bytearray(self.half_len)
        self.full = bytearray(self.full_len)
        self.half_fb = framebuf.FrameBuffer(self.half, self.half_w, s, framebuf.GS2_HMSB)
        self.full_fb = framebuf.FrameBuffer(self.full, s, s, framebuf.GS2_HMSB)

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
        s = self.size
        if self.f is None:
            return (s // 2 if cp < 0x80 else s), None
        if cp < 0x80:
            i = self._find(10, self.nh, cp)
            if i >= 0:
                self.f.seek(self._half_data + self.half_len * i)
                self.f.readinto(self.half)
                return self.half_w, self.half_fb
            return self.half_w, None
        i = self._find(10 + 2 * self.nh, self.nf, cp)
        if i >= 0:
            self.f.seek(self._full_data + self.full_len * i)
            self.f.readinto(self.full)
            return s, self.full_fb
        return s, None


class Canvas:
    def __init__(self, font_path):
        self.buf = bytearray(W * H * 2)
        self.fb = framebuf.FrameBuffer(self.buf, W, H, framebuf.RGB565)
        self.font = LargeFont(font_path)
        self._pal = bytearray(8)
        self.palette = framebuf.FrameBuffer(self._pal, 4, 1, framebuf.RGB565)
        self._pal_for = None

    def width(self, text):
        return sum(self.font.glyph(ord(c))[0] for c in text)

    def fit(self, text, w):
        """text, cut with an ellipsis to fit w pixels."""
        if self.width(text) <= w:
            return text
        while text and self.width(text + "…") > w:
            text = text[:-1]
        return text + "…"

    def _shades(self, ink, bg):
        if self._pal_for == (ink, bg):
            return
        self._pal_for = (ink, bg)
        a, b = _unswap(bg), _unswap(ink)
        for i in range(4):  # 0: background .. 3: ink, blended per channel
            r = ((a >> 11) * (3 - i) + (b >> 11) * i) // 3
            g = ((a >> 5 & 63) * (3 - i) + (b >> 5 & 63) * i) // 3
            bl = ((a & 31) * (3 - i) + (b & 31) * i) // 3
            c = r << 11 | g << 5 | bl
            self.palette.pixel(i, 0, (c & 0xFF) << 8 | c >> 8)

    def text(self, s, x, y, ink, bg):
        """Draw s with its top-left at (x, y) on a background of colour bg; returns the end x."""
        self._shades(ink, bg)
        fb, size = self.fb, self.font.size
        for ch in s:
            if x >= W:
                break
            w, g = self.font.glyph(ord(ch))
            if g is not None:
                fb.blit(g, x, y, -1, self.palette)
            elif ch != " ":
                fb.rect(x + 2, y + 3, w - 4, size - 6, ink)  # not in the font
            x += w
        return x

    def centred(self, s, x, y, w, ink, bg):
        s = self.fit(s, w)
        self.text(s, x + (w - self.width(s)) // 2, y, ink, bg)

    def fill(self, c):
        self.fb.fill(c)

    def box(self, x, y, w, h, c, border=None):
        self.fb.fill_rect(x, y, w, h, c)
        if border is not None:
            self.fb.rect(x, y, w, h, border)
            self.fb.rect(x + 1, y + 1, w - 2, h - 2, border)

    def face(self, cx, cy, r, mood, ink, bg):
        """A round face, mood 2 (smile) .. -2 (frown): the levels read without the words."""
        fb = self.fb
        fb.ellipse(cx, cy, r, r, ink, True)
        fb.ellipse(cx, cy, r - 3, r - 3, bg, True)
        e = r // 12 + 1
        fb.ellipse(cx - r // 3, cy - r // 4, e, e, ink, True)
        fb.ellipse(cx + r // 3, cy - r // 4, e, e, ink, True)
        m = r // 2
        for t in (0, 1, 2):  # a mouth three pixels thick, bent by the mood
            y0 = cy + r // 3 + t
            fb.line(cx - m, y0 - mood * 2, cx, y0 + mood * 3, ink)
            fb.line(cx, y0 + mood * 3, cx + m, y0 - mood * 2, ink)

    def mark(self, offline):
        """The offline mark: a dark dot at the top band's right end (the band's colour
        is read beside it, to take the mark away)."""
        self.fb.ellipse(W - 22, 23, 8, 8, OFF if offline else self.fb.pixel(W - 6, 2), True)

    def image(self, data, x, y, w, h):
        """A w x h RGB565 (panel order) picture, such as a staff photo."""
        self.fb.blit(framebuf.FrameBuffer(data, w, h, framebuf.RGB565), x, y)


def _unswap(c):
    return (c & 0xFF) << 8 | c >> 8
