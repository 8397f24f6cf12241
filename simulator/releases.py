"""An earlier release of the gateway, taken from this repository's history and run beside
this one on the same home: for the upgrade test and `pingjia sim upgrade`. Its code runs
under this environment's packages (a release's dependencies change rarely; when they do,
its pyproject says so and this is the place to install them)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from gateway.config import Config

ROOT = Path(__file__).resolve().parent.parent
# The release before this one: main as the last release left it. Move it on at each release.
PREVIOUS = "ab8054fc809870ad925def77f2d77dc5c6653527"

# Python code run with the release's folder as argv[1]: its packages ahead of this install's
# (an editable install's finder comes after sys.path)
FIRST = "import sys; sys.path.insert(0, sys.argv.pop(1)); "
RUN = FIRST + "from gateway.cli import main; sys.exit(main(sys.argv[1:]))"  # its `pingjia ...`

# A hall's first start, by the release in argv[1]: its settings, its database (its schema),
# its devices and the simulator's two accounts. Only what every release has: Config,
# open_db, Registry.add_many, account_token.
SETUP = """
import dataclasses, json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from gateway.auth import account_token
from gateway.config import Config
from gateway.data import open_db
from gateway.registry import Registry
spec = json.load(sys.stdin)
known = {f.name for f in dataclasses.fields(Config)}
cfg = Config(home=Path(spec["home"]), **{k: v for k, v in spec["settings"].items() if k in known})
cfg.save()
db = open_db(cfg.db_path)
creds = Registry(cfg, db).add_many([tuple(p) for p in spec["pairs"]])
print(json.dumps({"creds": creds, "token": account_token(db, "hall-admin", "admin", "the simulator's admin calls"),
                  "business": account_token(db, "business", "business", "the hall business system")}))
"""


def checkout(ref: str, dest: Path) -> Path:
    """The release's files at `ref` in dest (git archive: no work tree is touched)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        raise RuntimeError(f"cannot take release {ref[:12]} from the repository's history at {ROOT} (a shallow "
                           f"clone lacks it: git fetch --unshallow): {err.decode(errors='replace').strip()}") from None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    modules = ROOT / "gateway" / "console" / "node_modules"  # installed by npm, not in git
    if modules.exists() and not (dest / "gateway" / "console" / "node_modules").exists():
        (dest / "gateway" / "console" / "node_modules").symlink_to(modules)
    return dest


def command(tree: Path | None) -> list[str]:
    """`pingjia` of the release in `tree`; of this one for None."""
    return [sys.executable, "-m", "gateway"] if tree is None else [sys.executable, "-c", RUN, str(tree)]


def setup(tree: Path, cfg: Config, pairs: list[tuple[str, str]]) -> dict:
    """The hall's settings, database, devices and accounts, made by the release in tree."""
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "home"}
    p = subprocess.run([sys.executable, "-c", SETUP, str(tree)], capture_output=True, text=True, timeout=120,
                       input=json.dumps({"home": str(cfg.home), "settings": settings, "pairs": pairs}))
    if p.returncode:
        raise RuntimeError(f"release {tree} could not set the hall up: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])
