"""``minidl grade NN``: check a student's exercise against the library (see minidl.grade)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add the ``grade`` sub-command to the ``minidl`` command line."""
    from minidl import grade

    parser = subparsers.add_parser(
        "grade", help="grade an exercise of lessons/exercises/ against the library and gradcheck"
    )
    grade.build_parser(parser)
    parser.set_defaults(func=grade.run)
