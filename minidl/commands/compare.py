"""``minidl compare``: two images in numbers.

::

    minidl compare gatys.png adain.png --style starry_night --content grace_hopper

prints MSE, PSNR and SSIM of A against B (same size needed; SSIM on
luminance, Wang et al. 2004), and with ``--style`` each image's Gram distance
to the style at the Gatys style layers, with ``--content`` each image's
content distance (block4_conv2) to the content image, resized to A's size.
So a Gatys result and an AdaIN result can be put side by side: lower Gram
distance = closer to the style, lower content distance = more of the content.
"""

from __future__ import annotations

from minidl.runs import add_vgg16_options, vgg16_weights


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="MSE, PSNR, SSIM of two images; Gram and content distances with --style/--content",
        description="Compare image A with image B (MSE, PSNR, SSIM), and optionally both with "
        "a style image (Gram distance) and a content image (content distance).",
    )
    p.add_argument("a", metavar="A", help="image file or bundled name")
    p.add_argument("b", metavar="B", help="image file or bundled name")
    p.add_argument("--style", metavar="S", help="style image: Gram distance of A and B to it")
    p.add_argument("--content", metavar="C", help="content image: content distance of A and B")
    add_vgg16_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from PIL import Image

    from minidl import metrics
    from minidl.runs import fail, load_vgg16, resolve_image

    try:
        a, b = resolve_image(args.a), resolve_image(args.b)
        if a.shape != b.shape:
            raise ValueError(f"A {args.a} is {a.shape[1]}x{a.shape[0]} but B {args.b} is "
                             f"{b.shape[1]}x{b.shape[0]}: MSE, PSNR and SSIM need the same size")
        style = resolve_image(args.style) if args.style else None
        content = resolve_image(args.content) if args.content else None
        vgg = (load_vgg16(vgg16_weights(args), device=args.device)
               if style is not None or content is not None else None)
    except (ValueError, TypeError) as e:
        return fail("compare", e)
    print(f"A vs B ({a.shape[1]}x{a.shape[0]}): MSE {metrics.mse(a, b):.5f}  "
          f"PSNR {metrics.psnr(a, b):.2f} dB  SSIM {metrics.ssim(a, b):.4f}")
    if style is not None:
        da, db = metrics.gram_distance(a, style, vgg), metrics.gram_distance(b, style, vgg)
        layers = f"{metrics.STYLE_LAYERS[0]}..{metrics.STYLE_LAYERS[-1]}"
        print(f"Gram distance to style ({layers}): A {da:.4g}  B {db:.4g}")
    if content is not None:
        if content.shape[:2] != a.shape[:2]:
            content = np.asarray(Image.fromarray(content).resize(
                (a.shape[1], a.shape[0]), Image.Resampling.LANCZOS))
        da, db = metrics.content_distance(a, content, vgg), metrics.content_distance(b, content, vgg)
        print(f"content distance ({metrics.CONTENT_LAYER}): A {da:.4g}  B {db:.4g}")
    return 0
