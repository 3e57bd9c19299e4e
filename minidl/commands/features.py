"""The ``minidl features`` command: look at what VGG16's layers respond to.

::

    minidl features grace_hopper --layers block1_conv1,block3_conv1,block5_conv1

runs an image through VGG16 and, for each requested layer,

* prints its shape and activation statistics: mean, standard deviation,
  maximum, and the fraction of zeros (how many values the ReLU switched off);
* saves ``<out>/features_<layer>.png``: a grid of the ``--maps`` strongest
  feature maps (channels with the largest mean activation), each one titled
  with its channel index and scaled to its own range, and prints the path.

Choices worth knowing:

* IMAGE is a file, or the name of a sample image (``grace_hopper``,
  ``starry_night``, ... see :mod:`minidl.data`); an existing file wins.
* The weights are ``--weights PATH`` or, by default, the file
  :func:`minidl.weights.find_weights` finds.  If there is none, the command
  says where it looked and exits with status 1: pictures from a random network
  would look like an answer but mean nothing.  ``--random`` asks for such a
  network on purpose (to compare trained and untrained features, or in tests).
* Files: only ``features_<layer>.png`` in the ``--out`` folder are written.  A
  file of that name from an earlier run is replaced, and the command says so;
  nothing else in the folder is touched.
"""


from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from minidl.runs import resolve_image

DEFAULT_LAYERS = "block1_conv1,block3_conv1,block5_conv1"


def register(subparsers) -> None:
    """Add the ``features`` sub-command to the ``minidl`` command line."""
    p = subparsers.add_parser(
        "features",
        help="show VGG16 activations of an image (statistics and feature-map PNGs)",
        description="Run an image through VGG16, print activation statistics per layer "
        "and save a grid of the strongest feature maps of each layer as a PNG.",
    )
    p.add_argument(
        "image",
        metavar="IMAGE",
        help="image file, or a sample name: grace_hopper, starry_night, ...",
    )
    p.add_argument(
        "--layers",
        default=DEFAULT_LAYERS,
        help=f"comma-separated VGG16 layer names (default: {DEFAULT_LAYERS})",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--weights",
        metavar="PATH",
        help="weight file (default: found via MINIDL_WEIGHTS or weights/)",
    )
    source.add_argument(
        "--random",
        action="store_true",
        help="use a randomly initialised (untrained) VGG16 instead of weights",
    )
    p.add_argument(
        "--size",
        type=int,
        default=224,
        help="resize so the longer side has this many pixels (default: 224)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda", "cuda-emu"],
        help="where to compute (default: cpu; cuda-emu is slow, use a small --size)",
    )
    p.add_argument(
        "--out", default="outputs/features", help="folder for the PNGs (default: outputs/features)"
    )
    p.add_argument(
        "--maps", type=int, default=16, help="how many feature maps to show per layer (default: 16)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out ``minidl features``; returns the exit status."""
    from minidl.autograd import no_grad
    from minidl.features import activation_stats, save_feature_grid
    from minidl.models.vgg16 import LAYER_NAMES, preprocess, vgg16
    from minidl.weights import WeightsError, find_weights

    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if not layers or unknown:
        return _error(
            f"unknown layer(s) {', '.join(unknown) or '(none given)'}; "
            f"valid names: {', '.join(LAYER_NAMES)}"
        )
    if args.maps < 1:
        return _error(f"--maps must be at least 1, got {args.maps}")
    if args.size < 1:
        return _error(f"--size must be at least 1, got {args.size}")

    try:
        image = resolve_image(args.image, max_side=args.size)
    except (FileNotFoundError, ValueError) as e:
        return _error(str(e))

    if args.random:
        weights, described = None, "random (untrained, seed 0) -- --random was given"
    else:
        try:
            weights = Path(args.weights) if args.weights else find_weights()
        except FileNotFoundError as e:
            return _error(f"{e}\n(or pass --random to look at an untrained network)")
        described = str(weights)

    try:
        model = vgg16(weights=weights, device=args.device)
    except (FileNotFoundError, WeightsError, RuntimeError) as e:  # RuntimeError: device unusable
        return _error(str(e))

    print(f"device:  {args.device}")
    print(f"weights: {described}")
    print(f"image:   {args.image}, {image.shape[1]}x{image.shape[0]} pixels (W x H)")
    x = preprocess(image, device=args.device)
    start = time.perf_counter()
    try:
        with no_grad():
            outputs = model.features(x, layers)
    except ValueError as e:  # e.g. an image too small for the deepest layer
        return _error(str(e))
    print(f"forward: {time.perf_counter() - start:.2f} s")

    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _error(f"cannot create output folder {out_dir}: {e}")

    print(f"\n{'layer':<14}{'shape':<22}{'mean':>9}{'std':>9}{'max':>10}{'zeros':>8}")
    for name, feature in outputs.items():
        array = feature.numpy()[0]  # (C, H, W) of the only image
        s = activation_stats(array)
        shape = str(tuple(feature.shape))
        print(
            f"{name:<14}{shape:<22}{s['mean']:>9.3f}{s['std']:>9.3f}{s['max']:>10.2f}"
            f"{s['zeros']:>8.1%}"
        )
    print()
    for name, feature in outputs.items():
        path = out_dir / f"features_{name}.png"
        replaced = path.exists()
        save_feature_grid(path, feature.numpy()[0], name, args.maps)
        print(f"wrote {path}" + (" (replaced the file from an earlier run)" if replaced else ""))
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
