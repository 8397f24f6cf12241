"""systemd units for a hall's box: the broker, the gateway, and the nightly backup.

Both services run as one unprivileged system user (`pingjia` by default), never root: the
gateway rewrites the broker's password file and ACL when a device is registered and tells
it to reload (SIGHUP), so the two share a user, and the home folder is that user's alone.
Each unit restarts on failure and takes the sandboxing systemd offers for a network daemon
that writes only to its home.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .config import Config
from .errors import PingjiaError

UNIT_DIR = Path("/etc/systemd/system")
BACKUP_AT = "*-*-* 02:30:00"  # the hall is closed: the nightly backup

# What a daemon that reads its install, writes its home and speaks TCP needs, and no more.
HARDENING = """\
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={home}
{protect_home}{private_tmp}PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=
UMask=0077
"""


def pingjia_command() -> str:
    """This install's `pingjia`, by absolute path (a unit has no PATH of the venv)."""
    beside = Path(sys.executable).parent / "pingjia"
    found = str(beside) if beside.exists() else shutil.which("pingjia")
    if not found:
        raise PingjiaError("cannot find the `pingjia` command of this install")
    return found


PLAIN_PATH = re.compile(r"^/[A-Za-z0-9/._-]+$")


def units(cfg: Config, user: str, command: str | None = None) -> dict[str, str]:
    """The unit files, by name."""
    home = cfg.home.resolve()
    for what, path in (("the hall's home", home), ("this install", Path(command or pingjia_command()))):
        if not PLAIN_PATH.match(str(path)):  # systemd's path settings take no quoting
            raise PingjiaError(f"{what} is at {str(path)!r}: keep it at a path of letters, digits and / . _ -")
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", user):
        raise PingjiaError(f"{user!r} is not a system user name: lowercase letters, digits, '_' and '-'")
    run = f"{command or pingjia_command()} gateway"
    h = str(home)
    install = Path(command or pingjia_command()).resolve()
    # ProtectHome hides /home, /root and /run/user, PrivateTmp gives a /tmp of its own: each only
    # where neither the home nor the install (nor its Python) lives there (a hall's home belongs in /srv)
    runs_from = (home, install, Path(os.path.realpath(sys.executable)), Path(sys.base_prefix).resolve())

    def under(*roots: str) -> bool:
        return any(str(p).startswith(roots) for p in runs_from)
    hardening = HARDENING.format(home=h, protect_home="" if under("/home/", "/root/", "/run/user/")
                                 else "ProtectHome=yes\n",
                                 private_tmp="" if under("/tmp/", "/var/tmp/") else "PrivateTmp=yes\n")
    common = f"User={user}\nGroup={user}\nWorkingDirectory={h}\n{hardening}"
    return {
        "pingjia-broker.service": _unit(
            f"Pingjia hall {cfg.hall}: the broker (Mosquitto) the evaluators send their ratings to",
            "After=network-online.target\nWants=network-online.target\n",
            f"Type=simple\nExecStart={run} broker --home {h}\nRestart=on-failure\nRestartSec=2\n"
            f"LimitNOFILE=65536\nMemoryDenyWriteExecute=yes\n{common}"),
        "pingjia-gateway.service": _unit(
            f"Pingjia hall {cfg.hall}: the gateway (ingest, forwarding, API on port {cfg.api_port})",
            "After=network-online.target time-sync.target pingjia-broker.service\n"
            "Wants=network-online.target time-sync.target pingjia-broker.service\n",
            f"Type=simple\nExecStart={run} run --home {h}\nRestart=on-failure\nRestartSec=2\nTimeoutStopSec=20\n"
            f"LimitNOFILE=16384\n{common}"),
        "pingjia-backup.service": _unit(  # started by its timer, never at boot: no [Install]
            f"Pingjia hall {cfg.hall}: the nightly backup into {home}/backups", "",
            f"Type=oneshot\nExecStart={run} backup --home {h}\nNice=10\nIOSchedulingClass=idle\n{common}",
            install=None),
        "pingjia-backup.timer": _unit(
            f"Pingjia hall {cfg.hall}: the nightly backup", "",
            f"OnCalendar={BACKUP_AT}\nRandomizedDelaySec=15min\nPersistent=true\n", section="Timer",
            install="timers.target"),
    }


def _unit(description: str, unit: str, body: str, section: str = "Service",
          install: str | None = "multi-user.target") -> str:
    """One unit file: its [Unit], its [Service] (or [Timer]) and, unless started by another
    unit, how it is enabled."""
    text = f"[Unit]\nDescription={description}\n{unit}\n[{section}]\n{body}"
    return text + (f"\n[Install]\nWantedBy={install}\n" if install else "")


def ensure_user(user: str, home: Path) -> None:
    """The system user the services run as, made if missing; the home becomes its own."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                        "--shell", "/usr/sbin/nologin", user], check=True)
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(home):
        for name in (root, *(os.path.join(root, n) for n in dirs + files)):
            os.lchown(name, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)


def install(cfg: Config, user: str = "pingjia", unit_dir: Path = UNIT_DIR) -> list[Path]:
    """Make the user, give it the home, and write the units; returns their paths."""
    if os.geteuid() != 0:
        raise PingjiaError("install-service makes a system user and writes to /etc/systemd/system: run it as root")
    texts = units(cfg, user)  # checked before anything changes
    ensure_user(user, cfg.home)
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        path = unit_dir / name
        path.write_text(text)
        path.chmod(0o644)
        written.append(path)
    return written
