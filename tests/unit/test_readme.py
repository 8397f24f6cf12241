"""The README's commands are the real CLI's: every `pingjia ...` it shows, in a code block
or inline, parses with the commands the installed parts register (a renamed flag or
command fails here, not in a reader's terminal), and the test command is .ci/run's."""

import re
import shlex
from pathlib import Path

import pytest

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _clean(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        line = line.removeprefix("$ ").split("  #")[0].split(" # ")[0].strip()
        if "..." not in line and "|" not in line and "[" not in line:  # not a shape: `move|retire ...`
            out.append(line)
    return out


# whole commands, as typed in the code blocks
COMMANDS = _clean([line for block in re.findall(r"```\n(.*?)```", README, re.S) for line in block.splitlines()
                   if re.match(r"^(\$ )?(\.venv/bin/)?pingjia ", line)])
# commands named in the text, often without their arguments: the names must exist
NAMED = _clean(re.findall(r"`((?:\.venv/bin/)?pingjia [^`]+)`", README))


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 10 and len(NAMED) >= 5, (COMMANDS, NAMED)


@pytest.mark.parametrize("line", COMMANDS)
def test_each_readme_command_parses(line):
    try:
        args = build_parser().parse_args(shlex.split(line)[1:])
    except SystemExit as e:
        pytest.fail(f"`{line}` does not parse (exit {e.code})")
    assert callable(args.func)


@pytest.mark.parametrize("line", NAMED)
def test_each_command_the_readme_names_exists(line, capsys):
    words = [w for w in shlex.split(line)[1:] if not w.startswith("-")]
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*words[:3], "--help"])  # exits 0 only if the names lead somewhere
    assert e.value.code == 0, line


def test_the_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```\n{ci}\n```" in README
