"""The `lsmdepth` command: one entry point, one module per sub-command.

Each module in `lsmdepth_ros.commands` defines `HELP`, `add_arguments(parser)` and
`run(args) -> int`. Modules are imported lazily so `lsmdepth --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "demo": "lsmdepth_ros.commands.demo",
    "train": "lsmdepth_ros.commands.train",
    "evaluate": "lsmdepth_ros.commands.evaluate",
    "export": "lsmdepth_ros.commands.export",
    "bag": "lsmdepth_ros.commands.bag",
    "synth": "lsmdepth_ros.commands.synth",
    "benchmark": "lsmdepth_ros.commands.benchmark",
}


class HelpFormatter(argparse.HelpFormatter):
    """Every flag's help ends with its default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or not action.option_strings or default is None \
                or default is False or default is argparse.SUPPRESS or default == []:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsmdepth", description="LSMDepth monocular depth tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p = sub.add_parser(name, help="(not available yet)")
            p.set_defaults(_run=lambda args, n=name: _not_yet(n))
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _not_yet(name: str) -> int:
    print(f"lsmdepth {name}: not yet implemented in this version.", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
