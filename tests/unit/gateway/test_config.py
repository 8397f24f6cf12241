"""The hall's settings are checked when loaded: one clear message names what is wrong."""

import json

import pytest

from gateway.config import Config
from gateway.errors import ConfigError


def settings(tmp_path, **change):
    Config(home=tmp_path).save()
    path = tmp_path / "gateway.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    return tmp_path


@pytest.mark.parametrize("change,said", [
    ({"timezone": "Asia/Shang_hai"}, "not a known time zone"),
    ({"timezone": "../../etc/passwd"}, "not a known time zone"),
    ({"api_port": "8080"}, "api_port"),
    ({"broker_tls": 1}, "broker_tls"),
    ({"heartbeat_s": True}, "heartbeat_s"),
    ({"api_port": 70000}, "port"),
    ({"platform_settings": []}, "platform_settings"),
    ({"broker_host": "hall.example"}, "IP address"),
    ({"hall": "a/b"}, "hall"),
    ({"api_tokn": "x"}, "unknown settings in"),
])
def test_a_wrong_setting_is_named(tmp_path, change, said):
    with pytest.raises(ConfigError, match=said):
        Config.load(settings(tmp_path, **change))


def test_a_missing_or_broken_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="pingjia gateway init"):
        Config.load(tmp_path)
    (tmp_path / "gateway.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        Config.load(tmp_path)


def test_settings_of_an_older_release_gain_the_new_ones_once(tmp_path):
    home = settings(tmp_path)
    data = json.loads((home / "gateway.json").read_text())
    del data["alert_webhook_secret"], data["local_port"]
    (home / "gateway.json").write_text(json.dumps(data))
    first = Config.load(home)
    assert Config.load(home).alert_webhook_secret == first.alert_webhook_secret  # kept, not made anew each time
    assert (home / "gateway.json").stat().st_mode & 0o077 == 0
