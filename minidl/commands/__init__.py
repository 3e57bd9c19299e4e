"""One thin module per ``minidl`` sub-command.

Each module here defines ``register(subparsers)``, which adds its sub-command and
sets ``func`` on the parsed arguments.  ``minidl.cli`` finds them by listing this
package, so a new command is a new file and nothing else.  A command parses its
options, calls the library (``minidl.style``, ``minidl.inversion``, ...), writes
files and prints where they are; the algorithms themselves live in the library.
"""
