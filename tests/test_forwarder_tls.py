"""The forwarder verifies the platform's TLS certificate unless told not to."""

import socket
import ssl
import subprocess
import threading
import time

from gateway import protocol
from gateway.config import Config
from gateway.data import devices, open_db, ratings
from gateway.forwarder import Forwarder
from gateway.registry import Registry


def self_signed(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_a_platform_with_an_unverifiable_certificate_gets_nothing(tmp_path):
    ctx = self_signed(tmp_path)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    handshakes = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    handshakes.append("ok")
                    tls.recv(65536)
            except (ssl.SSLError, OSError) as e:
                handshakes.append(type(e).__name__)

    threading.Thread(target=serve, daemon=True).start()
    cfg = Config(home=tmp_path, hall="tls", platform_url=f"https://127.0.0.1:{port}",
                 platform_settings={"area_code": "440304"})
    assert cfg.platform_verify_tls is True
    db = open_db(cfg.db_path)
    reg = Registry(cfg, db)
    reg._sync_broker = lambda: None  # no broker in this test
    creds = reg.add("pj-0001", "W01")
    msg = protocol.signed(bytes.fromhex(creds["key"]), "rating", {
        "dev": "pj-0001", "seq": 1, "level": "satisfied", "reason": [], "case": "", "ts": int(time.time() * 1000),
        "tsync": True, "boot": 1, "up": 1, "fw": "t"})
    r, _ = protocol.parse_rating(protocol.encode(msg))
    with db.conn:
        ratings.store(db, r, devices.get(db, "pj-0001"), time.time(), 8 * 3600)
    fw = Forwarder(cfg)
    fw.once()
    server.close()
    assert "CERTIFICATE_VERIFY_FAILED" in fw.last_error
    assert db["ratings"].get("pj-0001:1")["forward_state"] == "pending"
    assert "ok" not in handshakes
