"""The ``minidl`` command: one sub-command per job, each registered by its module."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import minidl.commands

# Each module named here, and every module in minidl/commands/, has
# ``register(subparsers)``, which adds its sub-command and sets ``func`` on the
# parsed arguments.
COMMAND_MODULES = (
    "minidl.bench",
    "minidl.doctor",
    "minidl.weights",
    "minidl.features",
)


def command_package_modules() -> tuple[str, ...]:
    """The modules of minidl/commands/, sorted so ``minidl --help`` is stable."""
    names = sorted(m.name for m in pkgutil.iter_modules(minidl.commands.__path__))
    return tuple(f"minidl.commands.{name}" for name in names if not name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minidl", description="minidl: a teaching deep-learning framework"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES + command_package_modules():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
