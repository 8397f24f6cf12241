"""The hall's own certificate authority, and the broker's certificate from it.

Devices talk MQTT over TLS and check the broker against the hall CA that provisioning
puts in their config, so that a sniffer on the hall's shared Wi-Fi reads nothing and a
stranger's access point cannot pose as the broker. ECDSA P-256 keeps the handshake and
the certificate small for an ESP32; the device checks the broker's IP address against
the certificate (mbedTLS 3.6 matches IP subject alternative names).

    home/tls/ca.crt        the hall CA's certificate (public: it goes into each device)
    home/tls/ca.key        its private key: only the gateway's user reads it
    home/broker/broker.crt the broker's certificate, for its address (broker_host)
    home/broker/broker.key its key, readable by the broker alone
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 20 * 365  # the CA outlives the devices that trust it: replacing it means re-provisioning
BROKER_DAYS = 825


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pingjia"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_bytes(data)
    tmp.replace(path)


def _key_usage(**on) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def ensure_ca(tls_dir: Path, hall: str) -> None:
    """Make the hall CA once; an existing one is kept (devices already trust it)."""
    crt, key_path = tls_dir / "ca.crt", tls_dir / "ca.key"
    if crt.exists() and key_path.exists():
        return
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name(f"Pingjia hall {hall} CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_broker_cert(tls_dir: Path, broker_dir: Path, host: str) -> bool:
    """The broker's certificate for `host` (an IP address), signed by the hall CA; made
    again when missing, for another address, or within 30 days of expiry. Returns True
    when it was (re)made."""
    crt, key_path = broker_dir / "broker.crt", broker_dir / "broker.key"
    ip = ipaddress.ip_address(host)
    ca_cert = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    if crt.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if (ip in sans.get_values_for_type(x509.IPAddress) and cert.issuer == ca_cert.subject
                and cert.not_valid_after_utc > now + datetime.timedelta(days=30)):
            return False
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey), "the hall CA's key is ECDSA (ensure_ca)"
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=BROKER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    broker_dir.mkdir(parents=True, exist_ok=True)
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def ca_der_b64(tls_dir: Path) -> str:
    """The CA certificate as base64 DER: what a device's config carries (MicroPython's
    mbedTLS takes DER; PEM would need a terminating NUL)."""
    cert = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
