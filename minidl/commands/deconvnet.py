"""``minidl deconvnet IMAGE --layer block5_conv3 --top 9 -o OUT.png``.

For the ``--top`` channels with the strongest single activation (or the
``--channels`` given), project that one activation back to pixel space
(:mod:`minidl.inversion.deconvnet`, ``--rule deconvnet|guided|gradient``) and
draw a grid: for each channel, the image patch its receptive field covers,
next to the projection cropped to the same patch.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from minidl.runs import (
    add_vgg16_options,
    atomic_save_image,
    check_output_path,
    fail,
    parse_list,
    vgg16_weights,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deconvnet",
        help="project a layer's strongest activations back to pixels (Zeiler & Fergus)",
        description="Deconvnet projections (max_unpool2d with switches, conv_transpose2d), "
        "guided backpropagation or plain gradients of single VGG16 activations.",
    )
    p.add_argument("image", metavar="IMAGE", help="image file or bundled name")
    p.add_argument("--layer", default="block5_conv3")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--top", type=int, default=9, help="strongest channels (default 9)")
    which.add_argument("--channels", help="channel numbers, e.g. 12,40")
    p.add_argument("--rule", choices=("deconvnet", "guided", "gradient"), default="deconvnet")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--size", type=int, default=224, help="longest side (default 224)")
    add_vgg16_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minidl.inversion.deconvnet import (
        backward_pass,
        channel_count,
        forward_trace,
        single_activation,
        top_channels,
    )
    from minidl.inversion.optimize import check_size
    from minidl.models.vgg16 import LAYER_NAMES, preprocess
    from minidl.runs import load_vgg16, resolve_image

    try:
        out = check_output_path(args.output, "-o")
        if args.layer not in LAYER_NAMES:
            raise ValueError(f"unknown layer {args.layer!r}; valid names: {', '.join(LAYER_NAMES)}")
        if args.size < 1:
            raise ValueError(f"--size must be a positive integer, got {args.size}")
        if args.top < 1:
            raise ValueError(f"--top must be at least 1, got {args.top}")
        image = resolve_image(args.image, max_side=args.size)
        check_size(image.shape, args.layer)
        model = load_vgg16(vgg16_weights(args), device=args.device)
        channels = parse_list(args.channels, int, "--channels")
        count = channel_count(model, args.layer)
        if channels is not None and (not channels or not all(0 <= c < count for c in channels)):
            raise ValueError(f"--channels {args.channels}: {args.layer} has channels 0..{count - 1}")
    except (ValueError, TypeError, RuntimeError) as e:
        return fail("deconvnet", e)

    x = preprocess(image, device=args.device)
    top, trace = forward_trace(model, x, args.layer)  # one forward pass serves every channel
    if channels is None:
        channels = top_channels(top, args.top)
    panels = []
    for c in channels:
        signal, (i, j) = single_activation(top, c)
        projection = backward_pass(model, signal, trace, args.rule).numpy()[0]
        panels.append((c, (i, j), projection))
        print(f"channel {c:>3} strongest at ({i}, {j}): |projection| max "
              f"{np.abs(projection).max():.3g}")
    replaced = out.exists()
    atomic_save_image(out, grid(image, panels, args.layer, args.rule))
    print(f"wrote {out}" + (" (replaced the earlier file)" if replaced else ""))
    return 0


def grid(image, panels, layer, rule) -> np.ndarray:
    """Pairs (image patch, projection) for each channel, three pairs to a row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from minidl.inversion.deconvnet import receptive_field

    pairs = min(3, len(panels))
    rows = math.ceil(len(panels) / pairs)
    fig = Figure(figsize=(2.0 * 2 * pairs, 2.1 * rows + 0.5), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.suptitle(f"{layer}, rule {rule}: image patch | projection of the strongest activation",
                 fontsize=9)
    h, w = image.shape[:2]
    for k, (c, (i, j), projection) in enumerate(panels):
        top, left, bottom, right = receptive_field(layer, i, j)
        top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
        picture = to_picture(projection)
        for m, (img, title) in enumerate(((image, f"ch {c} patch"), (picture, f"ch {c} {rule}"))):
            ax = fig.add_subplot(rows, 2 * pairs, 2 * k + m + 1)
            ax.imshow(img[top:bottom, left:right], interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def to_picture(projection: np.ndarray) -> np.ndarray:
    """A (3, H, W) projection in VGG16's BGR input units as an RGB uint8 picture:
    zero is mid grey; the 99th percentile of the non-zero magnitudes reaches black
    or white (the few larger values are clipped, so faint structure shows)."""
    magnitudes = np.abs(projection[projection != 0])
    scale = 2 * max(float(np.percentile(magnitudes, 99)) if magnitudes.size else 0.0, 1e-12)
    rgb = projection[::-1].transpose(1, 2, 0) / scale + 0.5
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
