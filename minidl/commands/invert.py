"""``minidl invert IMAGE --layer block3_conv3 -o OUT.png``: what a layer keeps.

Reconstructs IMAGE from one VGG16 layer's activations
(:func:`minidl.inversion.optimize.invert`).  With ``--layers all`` (the last
convolution of every block) or a list, OUT is one labelled strip: the
original, then the reconstruction from each layer with its normalised feature
error and SSIM against the original under it; the table is printed too.
"""

from __future__ import annotations

import argparse

import numpy as np

from minidl.inversion.optimize import ALPHA_WEIGHT, MIN_PROGRESS, PATIENCE, TV_WEIGHTS
from minidl.runs import (
    RunInterrupted,
    add_vgg16_options,
    atomic_save_image,
    atomic_write_json,
    check_log_path,
    check_output_path,
    fail,
    parse_list,
    save_interrupted,
    vgg16_weights,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "invert",
        help="reconstruct an image from one VGG16 layer (Mahendran & Vedaldi)",
        description="Optimise an image, from small random noise, until its features at a "
        "layer match IMAGE's; shows what that layer keeps.",
    )
    p.add_argument("image", metavar="IMAGE", help="image file or bundled name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--layer", help="one layer, e.g. block3_conv3")
    which.add_argument("--layers", help="'all' (last conv of every block) or a list: one strip")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--size", type=int, default=224, help="longest side (default 224)")
    p.add_argument("--iterations", type=int, default=300,
                   help="at most this many per layer (default 300)")
    p.add_argument("--min-progress", type=float, default=MIN_PROGRESS,
                   help=f"stop a layer once {PATIENCE} iterations lower its loss by less than "
                        f"this fraction (default {MIN_PROGRESS:g}; 0: run every iteration)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--alpha", type=float, default=6.0, help="exponent of the α-norm (6)")
    p.add_argument("--beta", type=float, default=2.0, help="exponent of TV^β (2)")
    p.add_argument("--alpha-weight", type=float, help=f"default {ALPHA_WEIGHT:g}")
    p.add_argument("--tv-weight", type=float,
                   help=f"default: by block, {TV_WEIGHTS[1]:g} (block1) .. {TV_WEIGHTS[5]:g} (block5)")
    p.add_argument("--seed", type=int, default=0)
    add_vgg16_options(p)
    p.add_argument("--log", metavar="OUT.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minidl.inversion.optimize import LAST_CONVS, check_size, invert
    from minidl.models.vgg16 import LAYER_NAMES
    from minidl.runs import load_vgg16, resolve_image

    try:
        out = check_output_path(args.output, "-o")
        log_path = check_log_path(args.log) if args.log else None
        if args.layer:
            layers = [args.layer]
        elif args.layers.strip() == "all":
            layers = list(LAST_CONVS)
        else:
            layers = parse_list(args.layers, str, "--layers")
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if unknown or not layers:
            raise ValueError(f"unknown layer(s) {', '.join(unknown) or '(none)'}; "
                             f"valid names: {', '.join(LAYER_NAMES)}")
        if args.iterations < 1:
            raise ValueError(f"--iterations must be a positive integer, got {args.iterations}")
        if args.size < 1:
            raise ValueError(f"--size must be a positive integer, got {args.size}")
        if not args.min_progress >= 0:
            raise ValueError(f"--min-progress must be >= 0, got {args.min_progress}")
        original = resolve_image(args.image, max_side=args.size)
        for name in layers:
            check_size(original.shape, name)
        model = load_vgg16(vgg16_weights(args), device=args.device)
    except (ValueError, TypeError, RuntimeError) as e:
        return fail("invert", e)

    options = {"size": args.size, "iterations": args.iterations, "seed": args.seed,
                   "device": args.device, "alpha": args.alpha, "beta": args.beta,
                   "alpha_weight": args.alpha_weight, "tv_weight": args.tv_weight,
                   "optimizer": args.optimizer, "lr": args.lr,
                   "min_progress": args.min_progress, "model": model}
    results, logs = [], {}
    for name in layers:
        try:
            image, log = invert(original, name, **options)
        except RunInterrupted as stopped:
            return save_interrupted("invert", out, stopped, log_path)
        results.append(image)
        logs[name] = log
        final = log["final"]
        print(f"{name:<14} error {final['feature_error']:.4f}  "
              f"SSIM {final.get('ssim', float('nan')):.3f}  {log['seconds']:.1f} s  "
              f"(stopped: {log.get('stop_reason') or 'max_iter'})")

    replaced = out.exists()
    if len(layers) == 1:
        atomic_save_image(out, results[0])
    else:
        atomic_save_image(out, strip(original, results, layers, logs))
        _print_table(layers, logs)
    if log_path:
        args_json = {k: v for k, v in vars(args).items() if k != "func"}
        combined = logs[layers[0]] if len(layers) == 1 else _combine(logs)
        atomic_write_json(log_path, dict(combined, command="invert", args=args_json))
        print(f"wrote {log_path}")
    print(f"wrote {out}" + (" (replaced the earlier file)" if replaced else ""))
    return 0


def strip(original, images, layers, logs) -> np.ndarray:
    """One row: the original, then each reconstruction, titled, with error and SSIM below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(images) + 1
    fig = Figure(figsize=(2.2 * count, 3.0), dpi=100)
    canvas = FigureCanvasAgg(fig)
    panels = [("original", original, "")] + [
        (name, img, (f"error {logs[name]['final']['feature_error']:.3f}\n"
                    f"SSIM {logs[name]['final'].get('ssim', float('nan')):.3f}"))
        for name, img in zip(layers, images)
    ]
    for k, (title, img, below) in enumerate(panels):
        ax = fig.add_subplot(1, count, k + 1)
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel(below, fontsize=8)
    fig.tight_layout(pad=0.8)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _print_table(layers, logs) -> None:
    print(f"\n{'layer':<14}{'feature error':>14}{'SSIM':>8}{'seconds':>9}")
    for name in layers:
        final = logs[name]["final"]
        print(f"{name:<14}{final['feature_error']:>14.4f}{final.get('ssim', float('nan')):>8.3f}"
              f"{logs[name]['seconds']:>9.1f}")


def _combine(logs) -> dict:
    """One log for several layers: "layers" holds each layer's log; totals at the top."""
    first = next(iter(logs.values()))
    seconds = sum(log["seconds"] for log in logs.values())
    rows = sum(len(log["iterations"]) for log in logs.values())
    return {
        "device": first["device"],
        "iterations": [dict(row, layer=name) for name, log in logs.items()
                       for row in log["iterations"]],
        "final": {name: log["final"] for name, log in logs.items()},
        "seconds": seconds,
        "seconds_per_iteration": seconds / max(rows, 1),
        "peak_rss_mb": max(log["peak_rss_mb"] for log in logs.values()),
        "layers": {name: log for name, log in logs.items()},
    }
