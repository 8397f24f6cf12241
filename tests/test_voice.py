"""The spoken prompts on the real firmware (the unix board writes what an I2S amplifier
would play to voice.wav, in real time): a case to rate is greeted once, a bad review asks
for its reason, a kept rating is thanked; each clip is the one the build made; and a
press while a prompt plays is confirmed as fast as in silence."""

import wave

from firmware import voice
from simulator.harness import wait_until


def test_the_prompts_play_in_turn_and_never_hold_up_a_press(hall_factory):
    hall = hall_factory(devices=1, device_config={"voice": True})  # the amplifier fitted
    dev = next(iter(hall.devices))
    link = hall.controller.link(dev)

    def spoken():
        return [c for k, c, _ in link.voices if k == "voice"]

    hall.new_case(dev)
    wait_until(lambda: spoken() == ["welcome"], 10, what="the greeting")
    p = hall.press(dev, "very_dissatisfied", "slow")  # at once: the greeting (3.5 s) still playing
    assert p["confirm_ms"] < 100, p  # press to thanks screen, timed by the firmware
    wait_until(lambda: spoken() == ["welcome", "reason", "thanks"], 10, what="the reason prompt and the thanks")
    done = wait_until(lambda: [(c, t) for k, c, t in link.voices if k == "voice_done" and c == "thanks"], 10,
                      what="the thanks to be said")
    started = next(t for k, c, t in link.voices if k == "voice" and c == "thanks")
    clip = voice.clips()["thanks"]
    assert abs((done[0][1] - started) - len(clip) / voice.RATE) < 0.5  # said in real time
    with wave.open(str(hall.devices[dev].flash / "voice.wav")) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (voice.RATE, 1, 1)
        assert w.readframes(w.getnframes()) == clip  # the build's clip, whole
    # the session sent again (a reboot) with the case rated greets nobody; the next case does
    hall.power_cycle(dev)
    link = hall.controller.link(dev)
    assert link.wait(lambda l: l.seen["session"], 10)
    hall.new_case(dev)
    wait_until(lambda: spoken() == ["welcome"], 10, what="the next case's greeting")
