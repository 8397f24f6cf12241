"""The evaluator's spoken prompts, made when the firmware is built (both models).

Debian's espeak-ng speaks each prompt in Mandarin with its tones (voice cmn-latn-pinyin,
which reads Chinese characters as Mandarin). The clip is kept as mono 8-bit PCM at
7,350 Hz: espeak-ng's 22,050 Hz averaged three samples at a time, its silence trimmed and
its peak raised to full scale. That is about 7 KB a second of speech, and the device plays
it as it reads it. A recorded WAV named after a prompt (welcome.wav ...) in a folder
given to the build replaces that prompt.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import wave
from pathlib import Path

from gateway.errors import PingjiaError

PROMPTS = {
    "welcome": "您好，请对本次服务进行评价",  # a case to rate is shown
    "reason": "请选择不满意的原因",  # after a bad review's level
    "thanks": "感谢您的评价",  # the rating is kept
}
RATE = 7350  # Hz, 8-bit unsigned mono: firmware/device/voice.py plays it at this rate
VOICE = "cmn-latn-pinyin"
SILENCE = 4  # |sample - 128| at or under this, at either end, is cut


def _samples(path_or_wav: bytes | Path) -> tuple[list[int], int]:
    """A WAV's samples as signed 16-bit mono, and its rate."""
    import io

    src = io.BytesIO(path_or_wav) if isinstance(path_or_wav, bytes) else open(path_or_wav, "rb")
    with src, wave.open(src) as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        frames = w.readframes(w.getnframes())
    if width == 1:
        values = [(b - 128) << 8 for b in frames]
    elif width == 2:
        values = [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    else:
        raise PingjiaError(f"{'a prompt' if isinstance(path_or_wav, bytes) else path_or_wav}: "
                           f"a WAV of 8 or 16 bits a sample, please")
    return [sum(values[i:i + channels]) // channels for i in range(0, len(values), channels)], rate


def _to_clip(samples: list[int], rate: int) -> bytes:
    """Resampled to RATE (each output sample the mean of the input ones it covers), trimmed,
    scaled to full range, as unsigned 8-bit."""
    step = rate / RATE
    out = []
    i = 0.0
    while int(i) < len(samples):
        chunk = samples[int(i):max(int(i) + 1, int(i + step))]
        out.append(sum(chunk) // len(chunk))
        i += step
    peak = max((abs(s) for s in out), default=0) or 1
    scaled = [max(-127, min(127, s * 127 // peak)) for s in out]
    loud = [k for k, s in enumerate(scaled) if abs(s) > SILENCE]
    if not loud:
        raise PingjiaError("a prompt with nothing to hear")
    return bytes(s + 128 for s in scaled[loud[0]:loud[-1] + 1])


def speak(text: str) -> bytes:
    if not shutil.which("espeak-ng"):
        raise PingjiaError("espeak-ng is not installed (Debian's package espeak-ng): it makes the voice prompts")
    wav = subprocess.run(["espeak-ng", "-v", VOICE, "--stdout", text], capture_output=True, check=True).stdout
    return _to_clip(*_samples(wav))


@functools.cache  # the simulator puts them into every virtual device's flash
def clips(recorded: Path | None = None) -> dict[str, bytes]:
    """Each prompt's clip: a recorded one from `recorded` (NAME.wav) where there is one."""
    out = {}
    for name, text in PROMPTS.items():
        wav = recorded / f"{name}.wav" if recorded else None
        out[name] = _to_clip(*_samples(wav)) if wav and wav.exists() else speak(text)
    return out


def write(folder: Path, recorded: Path | None = None) -> list[Path]:
    """The clips as voice_NAME.pcm in folder (a build, or a device's slot)."""
    paths = []
    for name, data in clips(recorded).items():
        path = Path(folder) / f"voice_{name}.pcm"
        path.write_bytes(data)
        paths.append(path)
    return paths
