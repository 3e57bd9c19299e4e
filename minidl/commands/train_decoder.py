"""``minidl train-decoder``: train a "reverse VGG16" decoder (see :mod:`minidl.training`).

::

    minidl train-decoder --layer block3_conv1 --arch resize --out decoder.h5
    minidl train-decoder --out decoder.h5 --steps 2000 --resume      # continue it

Files, all written atomically (temporary file + rename):

* ``OUT`` (e.g. ``decoder.h5``): the decoder, float16, with its layer, arch
  and training settings in the file; rewritten at every checkpoint, so a run
  stopped at any time leaves a usable decoder;
* ``OUT.ckpt.h5`` (``decoder.ckpt.h5``): the checkpoint (float32 weights,
  Adam's state, the random generator) every ``--checkpoint-every`` steps;
  ``--resume`` continues from it bit for bit, so Ctrl-C loses at most the
  steps since the last one;
* ``OUT_curve.json``: held-out SSIM and PSNR against steps;
* at the end, ``OUT_heldout.png`` (held-out photos above, their decodings
  below) and ``OUT_ssim_vs_steps.png``.

A new run refuses to replace an existing checkpoint (use ``--resume``) or an
existing OUT (use ``--overwrite``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from minidl.models.decoder import ARCHS, LAYERS
from minidl.runs import add_vgg16_options, vgg16_weights
from minidl.training import Settings

DEFAULTS = Settings()


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-decoder",
        help="train a decoder that turns VGG16 features back into an image",
        description="Train a 'reverse VGG16' decoder for one layer on random crops of a "
        "folder of images, with checkpoints, --resume and held-out SSIM/PSNR figures.",
    )
    p.add_argument("--layer", choices=LAYERS, default=DEFAULTS.layer)
    p.add_argument("--arch", choices=ARCHS, default=DEFAULTS.arch,
                   help="resize: nearest upsampling + conv; transpose: stride-2 ConvTranspose2d")
    p.add_argument("--width", type=float, default=DEFAULTS.width,
                   help="channels relative to VGG16 (default 0.5)")
    p.add_argument("--images", default=DEFAULTS.images, metavar="DIR",
                   help="training images (default: the bundled photos but the 4 held out, "
                   "and the paintings)")
    p.add_argument("--out", required=True, metavar="DECODER.h5")
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="random crop side")
    p.add_argument("--batch", type=int, default=DEFAULTS.batch)
    p.add_argument("--steps", type=int, default=DEFAULTS.steps,
                   help="total steps (with --resume: to train up to)")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--pixel-weight", type=float, default=DEFAULTS.pixel_weight)
    p.add_argument("--feature-weight", type=float, default=DEFAULTS.feature_weight,
                   help="perceptual loss at the decoder's layer (relative error)")
    p.add_argument("--ssim-weight", type=float, default=DEFAULTS.ssim_weight,
                   help="weight of 1 - SSIM (luminance)")
    p.add_argument("--style-images", metavar="DIR",
                   help="train for AdaIN with these style images (Huang & Belongie)")
    p.add_argument("--style-weight", type=float, default=10.0,
                   help="AdaIN style loss weight (with --style-images)")
    p.add_argument("--init", metavar="DECODER.h5",
                   help="start from this decoder (with --style-images default: the shipped one)")
    p.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every, metavar="N")
    p.add_argument("--eval-every", type=int, default=DEFAULTS.eval_every, metavar="N",
                   help="held-out SSIM/PSNR every N steps")
    p.add_argument("--held-out-size", type=int, default=DEFAULTS.held_out_size, metavar="PX",
                   help="longer side of the held-out photos for SSIM/PSNR (default 256)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    add_vgg16_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def settings_from(args) -> Settings:
    """Settings for a new run (ValueError for values out of range)."""
    for name in ("size", "batch", "steps", "checkpoint_every", "eval_every", "held_out_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, "
                             f"got {getattr(args, name)}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if min(args.pixel_weight, args.feature_weight, args.ssim_weight, args.style_weight) < 0:
        raise ValueError("loss weights must be >= 0")
    init = args.init
    if args.style_images and init is None:
        from minidl.models.decoder import shipped_decoder_path

        shipped = shipped_decoder_path(args.layer, args.arch)
        init = str(shipped) if shipped.is_file() else None
    return Settings(
        layer=args.layer, arch=args.arch, width=args.width, images=args.images,
        size=args.size, batch=args.batch, steps=args.steps, lr=args.lr, seed=args.seed,
        pixel_weight=args.pixel_weight, feature_weight=args.feature_weight,
        ssim_weight=args.ssim_weight, style_images=args.style_images,
        style_weight=args.style_weight if args.style_images else 0.0, init=init,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        held_out_size=args.held_out_size,
    )


def resumed_settings(args, checkpoint) -> Settings:
    """The checkpoint's settings, with this call's --steps and intervals."""
    from minidl.training import TrainingError, read_checkpoint_settings

    saved = read_checkpoint_settings(checkpoint)
    asked = (args.layer, args.arch, args.width)
    if (saved.layer, saved.arch, saved.width) != asked:
        raise TrainingError(
            f"--resume: checkpoint {checkpoint} is for a {saved.layer} {saved.arch} decoder "
            f"of width {saved.width}, not {args.layer} {args.arch} of width {args.width}"
        )
    return dataclasses.replace(saved, steps=args.steps, checkpoint_every=args.checkpoint_every,
                               eval_every=args.eval_every)


def run(args) -> int:
    from minidl.runs import fail, load_vgg16
    from minidl.training import Trainer, checkpoint_path, train

    out = Path(args.out)
    checkpoint = checkpoint_path(out)
    try:
        if out.suffix != ".h5":
            raise ValueError(f"--out {out}: expected a .h5 file name")
        if not (out.parent if str(out.parent) else Path(".")).is_dir():
            raise ValueError(f"--out {out}: folder {out.parent} does not exist")
        if args.resume:
            settings = resumed_settings(args, checkpoint)
        else:
            if checkpoint.exists():
                raise ValueError(f"checkpoint {checkpoint} exists: continue it with --resume, "
                                 f"or delete it to start again")
            if out.exists() and not args.overwrite:
                raise ValueError(f"--out {out} exists; add --overwrite to replace it")
            settings = settings_from(args)
        vgg = load_vgg16(vgg16_weights(args), device=args.device)
        trainer = Trainer(settings, vgg)
        if args.resume:
            trainer.load_checkpoint(checkpoint)
            print(f"resumed {checkpoint} at step {trainer.state.step}")
    except (ValueError, FileNotFoundError) as e:
        return fail("train-decoder", e)
    try:
        train(trainer, out, checkpoint, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\nminidl train-decoder: interrupted at step {trainer.state.step}; the last "
              f"checkpoint is {checkpoint}: continue with --resume", file=sys.stderr)
        return 130
    report(trainer, out)
    return 0


def report(trainer, out: Path) -> None:
    """Print the held-out figures and write the two PNGs."""
    from minidl.training import checkpoint_path, curve_path, write_training_figures

    point = trainer.state.curve[-1]
    print(f"held-out photos, longer side {trainer.settings.held_out_size} px, after {trainer.state.step} steps "
          f"({trainer.state.seconds:.0f} s of training):")
    for name, values in point["images"].items():
        print(f"  {name}: SSIM {values['ssim']:.3f}  PSNR {values['psnr']:5.2f} dB")
    print(f"  mean:    SSIM {point['ssim']:.3f}  PSNR {point['psnr']:5.2f} dB")
    figures = write_training_figures(trainer, out)
    for path in (out, checkpoint_path(out), curve_path(out), *figures):
        print(f"wrote {path}")
