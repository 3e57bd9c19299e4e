"""The ``minidl`` command: one sub-command per job, each registered by its module."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import minidl.commands

# Each module named here, and every module in minidl/commands/, has
# ``register(subparsers)``, which adds its sub-command and sets ``func`` on the
# parsed arguments.
COMMAND_MODULES = ()


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
        status = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows up here, not at exit where it can't be caught
        return status
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`minidl doctor | head -1`): not an error of ours.  As
        # Python's docs recommend (signal module, "Note on SIGPIPE"), point stdout at
        # devnull so the flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
