"""``minidl weights``: download the VGG16 file, or describe any weight file.

    $ minidl weights fetch vgg16
    $ minidl weights info weights/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5

``info`` reads only the file's metadata (names, shapes, dtypes), so it is quick
on any file and safe on one that claims absurd sizes.  It lists the arrays in
network order: for a Keras 3 file, ``conv2d_2`` comes before ``conv2d_10``.
"""

from __future__ import annotations

import argparse
import json
import sys

from minidl.weights import (
    LAYOUT_DESCRIPTIONS,
    SOURCES,
    DownloadError,
    WeightsError,
    fetch,
    find_weights,
    inspect_weights,
)


def register(subparsers) -> None:
    """Add ``minidl weights fetch [NAME] [--dir D]`` and ``minidl weights info FILE``."""
    parser = subparsers.add_parser("weights", help="download and inspect weight files")

    def show_help(args: argparse.Namespace) -> int:  # `minidl weights` with no action
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION")

    p = actions.add_parser("fetch", help="download pretrained weights and check their hash")
    p.add_argument("name", nargs="?", default="vgg16", choices=sorted(SOURCES))
    p.add_argument(
        "--dir",
        help="folder to save into (default: weights/ of the source checkout, "
        "else the user cache folder)",
    )
    p.set_defaults(func=run_fetch)

    p = actions.add_parser(
        "info", help="show the layout, arrays and parameter count of a .h5 or .keras file"
    )
    p.add_argument("file")
    p.set_defaults(func=run_info)


def run_fetch(args: argparse.Namespace) -> int:
    """Download, or say why not (exit code 1: the network or the disk, not the user).

    Without ``--dir``, a usable file that minidl already finds (``MINIDL_WEIGHTS``,
    weights/, the cache) is enough: nothing is downloaded, so an offline user who set
    MINIDL_WEIGHTS can run the README's first command as written.
    """
    if args.dir is None:
        try:
            found = find_weights(args.name)
            inspect_weights(found)
        except (FileNotFoundError, WeightsError):
            pass
        else:
            print(f"{args.name} weights already here: {found}; not downloading")
            return 0
    try:
        fetch(args.name, directory=args.dir)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print one line per array; a file that cannot be read is exit code 2."""
    try:
        weights = inspect_weights(args.file)
    except (WeightsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"file:    {weights.path}")
    print(f"layout:  {LAYOUT_DESCRIPTIONS[weights.layout]}")
    if weights.metadata:
        print(f"metadata: {json.dumps(weights.metadata)}")
    width = max((len(k) for k in weights.arrays), default=0)
    for key, info in weights.arrays.items():
        shape = str(info.shape)
        print(f"  {key:<{width}}  {shape:<20} {info.dtype!s:<8} {info.size:>12,}")
    print(f"{len(weights.arrays)} arrays, {weights.num_parameters:,} parameters")
    if weights.ignored:
        print(f"ignored: {', '.join(weights.ignored)} (not convolution layers)")
    for note in weights.notes:
        print(f"note: {note}")
    return 0
