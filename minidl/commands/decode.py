"""``minidl decode``: image -> VGG16 -> a trained decoder -> image.

::

    minidl decode kodim03 --decoder block3_conv1 -o decoded.png

shows what one VGG16 layer keeps of an image, as a picture, and prints how
close the decoding is to the input: MSE, PSNR and SSIM (:mod:`minidl.metrics`).
``--decoder`` is a layer name (the decoder shipped for it) or a decoder file.
The input is resized to ``--size`` (longer side) and cropped to a multiple of
2**poolings of the decoder's layer, which is the size the output has.
"""

from __future__ import annotations

import time

from minidl.runs import add_vgg16_options, vgg16_weights


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "decode",
        help="pass an image through VGG16 and a trained decoder; print MSE, PSNR, SSIM",
        description="Encode an image with VGG16 up to the decoder's layer, decode it back, "
        "save the result and print MSE, PSNR and SSIM against the input.",
    )
    p.add_argument("image", metavar="IMAGE", help="image file, or a bundled name")
    p.add_argument("--decoder", default="block3_conv1",
                   help="a layer name (its shipped decoder) or a decoder .h5 file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--size", type=int, default=256, help="longer side in pixels (default 256)")
    add_vgg16_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from minidl import metrics
    from minidl.models.decoder import fit_to_layer, load_decoder, reconstruct
    from minidl.runs import atomic_save_image, check_output_path, fail, load_vgg16, resolve_image

    start = time.perf_counter()
    try:
        if args.size < 1:
            raise ValueError(f"--size must be a positive integer, got {args.size}")
        out = check_output_path(args.output, "-o")
        decoder = load_decoder(args.decoder, device=args.device)
        image = fit_to_layer(resolve_image(args.image, max_side=args.size), decoder.pools)
        vgg = load_vgg16(vgg16_weights(args), device=args.device)
    except (ValueError, TypeError, FileNotFoundError) as e:
        return fail("decode", e)
    decoded = reconstruct(vgg, decoder, image)
    atomic_save_image(out, decoded)
    print(f"{decoder.layer} {decoder.arch} decoder, {image.shape[1]}x{image.shape[0]} px: "
          f"MSE {metrics.mse(decoded, image):.5f}  PSNR {metrics.psnr(decoded, image):.2f} dB  "
          f"SSIM {metrics.ssim(decoded, image):.3f}")
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0
