"""Pingjia simulator: virtual evaluators, the hall's outside systems as stand-ins, scenarios."""

import sys


def say(text: str) -> None:
    """Progress for the person at the terminal, on stderr: stdout carries the results."""
    print(text, file=sys.stderr, flush=True)
