"""The doctor on states a box gets into: certificates near or past their end, a missing
CA or database, a disk nearly full. Each is a finding with its fix, never a crash."""

import datetime
import shutil
from collections import namedtuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import doctor, tls
from gateway.config import Config


def _cert(path, days_left: float) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now + datetime.timedelta(days=days_left)).sign(key, hashes.SHA256()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_certificates_near_and_past_their_end(tmp_path):
    cfg = Config(home=tmp_path, hall="d")
    tls.ensure_ca(cfg.tls_dir, "d")
    _cert(cfg.broker_dir / "broker.crt", 10)
    now = datetime.datetime.now(datetime.UTC)
    found = {f.message.split(" is ")[0].split(" expires")[0]: f for f in doctor.check_certificates(cfg, now)}
    assert [f.status for f in found.values()] == ["ok", "warn"], found
    assert "restart the broker" in found["the broker certificate"].fix
    _cert(cfg.broker_dir / "broker.crt", -1)
    (broker,) = [f for f in doctor.check_certificates(cfg, now) if "broker" in f.message]
    assert broker.status == "fail" and "expired" in broker.message


def test_a_missing_ca_or_database_is_a_finding(tmp_path):
    cfg = Config(home=tmp_path / "h", hall="d")
    cfg.save()
    (f,) = doctor.check_broker(cfg)
    assert f.status == "fail" and "no hall CA" in f.message
    out = doctor.examine(cfg)  # no database, no gateway, no broker
    assert {"database", "gateway", "broker"} <= {x.check for x in out if x.status == "fail"}
    assert not doctor.report(out)["ok"]


def test_a_disk_nearly_full(tmp_path, monkeypatch):
    cfg = Config(home=tmp_path, hall="d", disk_free_min_mb=200)
    Usage = namedtuple("Usage", "total used free")
    for free_mb, status in ((100, "fail"), (500, "warn"), (5000, "ok")):
        monkeypatch.setattr(shutil, "disk_usage", lambda p, f=free_mb: Usage(10**12, 0, f * 10**6))
        (finding,) = doctor.check_disk(cfg)
        assert finding.status == status, (free_mb, finding)
