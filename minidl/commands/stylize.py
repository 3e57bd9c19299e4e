"""``minidl stylize CONTENT STYLE [STYLE ...] -o OUT.png``: neural style transfer.

The work is :func:`minidl.style.stylize` (``--method gatys``, the default, is
:mod:`minidl.style.gatys`; ``--method adain`` is :mod:`minidl.style.adain`).
This module only reads the options, checks the files, and writes the results:
OUT (replaced only by a finished image), OUT_0100.png ... with
``--save-every``, the ``--log`` JSON, and on Ctrl-C OUT_interrupted.png.
"""

from __future__ import annotations

import argparse
import time

from minidl.runs import (
    RunInterrupted,
    add_vgg16_options,
    atomic_save_image,
    atomic_write_json,
    check_log_path,
    check_output_path,
    fail,
    numbered_path,
    parse_list,
    save_interrupted,
    vgg16_weights,
)
from minidl.style.gatys import CONTENT_LAYERS, STYLE_LAYERS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stylize",
        help="paint a photo in the style of one or more paintings (Gatys or AdaIN)",
        description="Neural style transfer. CONTENT and STYLE are image files or bundled "
        "names (grace_hopper, starry_night, the_scream, shipwreck, ...).",
    )
    p.add_argument("content", metavar="CONTENT")
    p.add_argument("styles", metavar="STYLE", nargs="+")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png", help="result (PNG or JPEG)")
    p.add_argument("--method", choices=("gatys", "adain"), default="gatys")
    g = p.add_argument_group("Gatys et al. (optimise the image)")
    g.add_argument("--content-layers", default=",".join(CONTENT_LAYERS))
    g.add_argument("--style-layers", default=",".join(STYLE_LAYERS))
    g.add_argument("--style-layer-weights", help="one weight per style layer (default: all 1)")
    g.add_argument("--content-weight", type=float, default=5.0)
    g.add_argument("--style-weight", type=float, default=100.0)
    g.add_argument("--tv-weight", type=float, default=1e-3)
    g.add_argument("--style-scale", type=float, default=1.0,
                   help="style image size relative to the content's (default 1)")
    g.add_argument("--init", default="content", help="content, random, or an image PATH")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    g.add_argument("--lr", type=float, default=1.0)
    g.add_argument("--iterations", type=int, default=500)
    g.add_argument("--pooling", choices=("max", "avg"), default="max")
    g.add_argument("--original-colors", action="store_true",
                   help="keep the content's colours (luminance transfer in YUV)")
    g.add_argument("--scales", help="coarse to fine, e.g. 256,512 (replaces --size)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also write OUT_0100.png ... every N iterations")
    a = p.add_argument_group("AdaIN (one pass through a trained decoder)")
    a.add_argument("--alpha", type=float, default=1.0, help="style strength 0..1")
    a.add_argument("--preserve-color", action="store_true")
    a.add_argument("--decoder", metavar="PATH", help="decoder file (default: the shipped one)")
    p.add_argument("--style-blend-weights", help="one weight per STYLE, e.g. 3,7")
    p.add_argument("--size", type=int, default=512, help="longest side in pixels (default 512)")
    add_vgg16_options(p)
    p.add_argument("--log", metavar="OUT.json", help="write settings, losses and timings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        out = check_output_path(args.output, "-o")
        log_path = check_log_path(args.log) if args.log else None
        options = _options(args)
    except ValueError as e:
        return fail("stylize", e)

    from minidl.style import stylize

    if args.save_every:
        options["on_save"] = lambda i, image: print(
            f"wrote {atomic_save_image(numbered_path(out, i), image)}")
    start = time.perf_counter()
    try:
        image, log = stylize(args.content, args.styles, method=args.method, **options)
    except RunInterrupted as stopped:
        return save_interrupted("stylize", out, stopped, log_path)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        return fail("stylize", e)
    log["command"], log["args"] = "stylize", _json_args(args)
    replaced = out.exists()
    atomic_save_image(out, image)
    if log_path:
        atomic_write_json(log_path, log)
    _report(out, image, log, replaced, log_path, time.perf_counter() - start)
    return 0


def _options(args) -> dict:
    """The keyword arguments of ``minidl.style.stylize`` for ``args`` (ValueError if bad)."""
    common = {
        "style_blend_weights": parse_list(args.style_blend_weights, float, "--style-blend-weights"),
        "size": args.size, "device": args.device,
        "weights": vgg16_weights(args),
    }
    if args.style_blend_weights and len(common["style_blend_weights"]) != len(args.styles):
        raise ValueError(
            f"--style-blend-weights: got {len(common['style_blend_weights'])} weight(s) "
            f"for {len(args.styles)} style image(s)"
        )
    if args.size < 1:
        raise ValueError(f"--size must be a positive integer, got {args.size}")
    if args.method == "adain":
        return dict(common, alpha=args.alpha, preserve_color=args.preserve_color,
                    decoder=args.decoder)
    if args.iterations < 1:
        raise ValueError(f"--iterations must be a positive integer, got {args.iterations}")
    if args.save_every < 0:
        raise ValueError(f"--save-every must be >= 0, got {args.save_every}")
    scales = parse_list(args.scales, int, "--scales")
    if scales is not None and (not scales or min(scales) < 1):
        raise ValueError(f"--scales must be positive sizes, got {args.scales!r}")
    return dict(
        common,
        content_layers=tuple(parse_list(args.content_layers, str, "--content-layers")),
        style_layers=tuple(parse_list(args.style_layers, str, "--style-layers")),
        style_layer_weights=parse_list(args.style_layer_weights, float, "--style-layer-weights"),
        content_weight=args.content_weight, style_weight=args.style_weight,
        tv_weight=args.tv_weight, style_scale=args.style_scale, init=args.init,
        optimizer=args.optimizer, lr=args.lr, iterations=args.iterations, pooling=args.pooling,
        original_colors=args.original_colors, scales=scales, seed=args.seed,
        save_every=args.save_every,
    )


def _json_args(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _report(out, image, log, replaced, log_path, wall) -> None:
    final = log.get("final", {})
    parts = ", ".join(f"{k} {final[k]:.4g}" for k in ("content", "style", "tv") if k in final)
    if "loss" in final:
        print(f"final loss {final['loss']:.4g} ({parts})")
    rows = len(log.get("iterations", []))
    if rows > 1:
        print(f"{rows} loss evaluations in {log['seconds']:.1f} s "
              f"({log['seconds_per_iteration']:.3f} s each); peak memory "
              f"{log['peak_rss_mb']:.0f} MB")
    elif "seconds" in log:
        print(f"one pass in {log['seconds']:.1f} s; peak memory {log['peak_rss_mb']:.0f} MB")
    if log.get("stop_reason"):
        print(f"optimizer stopped: {log['stop_reason']}")
    note = " (replaced the earlier file)" if replaced else ""
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}){note} in {wall:.1f} s")
    if log_path:
        print(f"wrote {log_path}")
