# The device's provisioned settings (config.json in flash), with every default in this
# one place: the modules read cfg["name"], never a default of their own.
import json

DEFAULTS = {
    "maintenance_s": 3,  # seconds after boot with no app and no watchdog: the REPL is reachable
    "wdt_ms": 30000,  # the hardware watchdog's timeout
    "reason_timeout_s": 15,  # how long a bad review waits for its reason; then "none"
    "thanks_ms": 3000,  # the tablet's thank-you screen, before the next case shows
    "debounce_ms": 30,  # the unix board's buttons (the ESP32's come from its pin map)
    "min_gap_ms": 800,
    "ca": None,  # the hall CA, base64 DER; None: plain MQTT (a hall without TLS)
    "ctl": None,  # the unix board's simulator link, "host:port"
    "heap_watch_ms": None,  # the unix board samples the live heap this often
    "wifi": {},  # the ESP32's station: ssid, psk
    "trial_s": 180,  # a new version must reach the gateway in this, or it is rolled back
    "font": "font.bin",  # the display font (app.py: the running slot's)
    "font_large": "font_large.bin",  # the tablet's
    "model": "five-button",  # the unix board's: which evaluator it is (the ESP32's: its build's pin map)
    # spoken prompts (voice.py); None: the board's choice: the tablet speaks, the five-button's
    # amplifier is optional, so it is silent unless this is true
    "voice": None,
}
REQUIRED = ("dev", "hall", "key", "password", "broker")


def load(path="config.json"):
    """The settings with defaults; raises OSError or ValueError for a missing or unusable file."""
    with open(path) as f:
        cfg = json.load(f)
    if not isinstance(cfg, dict):
        raise ValueError("config is not an object")
    for name in REQUIRED:
        if name not in cfg:
            raise ValueError("config lacks " + name)
    out = dict(DEFAULTS)
    out.update(cfg)
    out.setdefault("user", cfg["dev"])
    return out
