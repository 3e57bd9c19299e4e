"""Fast arbitrary style transfer with AdaIN (Huang & Belongie, 2017).

Gatys et al. optimise an image for hundreds of iterations; AdaIN does one
pass.  Its idea: in VGG16's feature maps, the *style* of an image is largely
in the mean and standard deviation of each channel (how much of each texture
there is, and how strongly), the *content* in where things are.  So::

    f_c = VGG16(content)[layer]            encode both images
    f_s = VGG16(style)[layer]
    t   = std(f_s) * (f_c - mean(f_c)) / std(f_c) + mean(f_s)     per channel: F.adain
    t   = alpha * t + (1 - alpha) * f_c    the content-style trade-off
    out = decoder(t)                       a trained "reverse VGG16"

With several styles the AdaIN *targets* are mixed, ``t = sum_k b_k t_k`` with
blend weights ``b`` normalised to sum to one.  ``alpha = 0`` gives the
decoder's reconstruction of the content; ``alpha = 1`` the full style.

The decoder matters: one trained only to reconstruct (``minidl
train-decoder``) already gives a stylisation, one trained with the style loss
(``train-decoder --style-images``) gives stronger, cleaner textures.  By
default the shipped ``block4_conv1`` decoder is used (the layer AdaIN uses),
the one fine-tuned with the style loss when minidl ships it.

``preserve_color`` keeps the content's colours: the result's luminance with
the content's chrominance (:func:`minidl.style.colors.match_luminance`), as
Gatys' ``original_colors``.
"""

from __future__ import annotations

from minidl import functional as F
from minidl.autograd import no_grad
from minidl.models.decoder import fit_to_layer, load_decoder, shipped_decoder_path
from minidl.models.vgg16 import deprocess, preprocess
from minidl.runs import RunLog, load_vgg16, resolve_image
from minidl.style.blend import blend_weights

DEFAULT_LAYER = "block4_conv1"


def default_decoder():
    """The shipped block4_conv1 decoder fine-tuned for AdaIN if there is one, else the
    shipped reconstruction decoder of that layer."""
    tuned = shipped_decoder_path(DEFAULT_LAYER, adain=True)
    return tuned if tuned.is_file() else DEFAULT_LAYER




def adain_target(content_features, style_features: list, blend: list[float], alpha: float):
    """The features the decoder turns into the result (see the module docstring)."""
    target = sum(b * F.adain(content_features, s) for b, s in zip(blend, style_features))
    return alpha * target + (1 - alpha) * content_features


def stylize(content, styles, *, style_blend_weights=None, alpha: float = 1.0,
            preserve_color: bool = False, decoder=None, size: int = 512, device: str = "cpu",
            weights=None):
    """Stylise ``content`` with ``styles`` in one encoder-decoder pass.

    Args:
        content, styles: uint8 (H, W, 3) arrays, file paths or bundled names;
            ``styles`` one of these or a list of them.
        style_blend_weights: one weight per style (default: equal).
        alpha: 0 (content reconstruction) .. 1 (full style).
        preserve_color: keep the content's colours.
        decoder: a decoder file, a layer name (its shipped decoder), a loaded
            :class:`~minidl.models.decoder.Decoder`, or None: the shipped
            ``block4_conv1`` one (fine-tuned for AdaIN when shipped).
        size: longer side of the content and styles, in pixels; the content is
            then cropped to a multiple of 2**poolings (8 for block4_conv1).
        weights: VGG16 weights, as :func:`minidl.runs.load_vgg16` takes them.

    Returns:
        ``(image, log)``: a uint8 image and the ``--log`` dictionary, whose
        ``"seconds"`` is loading the images and decoder, encoding, AdaIN and
        decoding (VGG16's weights are start-up, as for Gatys).
    """
    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not styles:
        raise ValueError("adain: give at least one style image")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"adain: alpha must be in [0, 1], got {alpha}")
    if int(size) < 1:
        raise ValueError(f"adain: size must be a positive integer, got {size}")
    blend = blend_weights(style_blend_weights, len(styles), "adain")
    model = load_vgg16(weights, device=device)
    if hasattr(decoder, "layer"):
        decoder_name = f"Decoder({decoder.layer!r}, {decoder.arch!r})"
    else:
        decoder_name = str(decoder or default_decoder())
    settings = {"method": "adain", "size": size, "alpha": alpha, "preserve_color": preserve_color,
                "style_blend_weights": blend, "decoder": decoder_name}
    log = RunLog("stylize", settings, device)
    log.start()

    net = decoder
    if not hasattr(net, "layer"):  # a path or layer name, not a loaded Decoder
        net = load_decoder(decoder or default_decoder(), device)
    layer = net.layer
    content_img = fit_to_layer(resolve_image(content, max_side=size), net.pools)
    style_imgs = [resolve_image(s, max_side=size) for s in styles]
    for what, img in [("content", content_img)] + [("style", s) for s in style_imgs]:
        if min(img.shape[:2]) < 2**net.pools:
            raise ValueError(f"adain: {what} image {img.shape[1]}x{img.shape[0]} is too small "
                             f"for {layer} (needs {2**net.pools} pixels per side)")
    loaded = log.elapsed()
    with no_grad():
        f_c = model.features(preprocess(content_img, device), layer)[layer]
        f_s = [model.features(preprocess(s, device), layer)[layer] for s in style_imgs]
        encoded = log.elapsed()
        target = adain_target(f_c, f_s, blend, float(alpha))
        renormalised = log.elapsed()
        image = deprocess(net(target))
    if preserve_color:
        from minidl.style.colors import match_luminance

        image = match_luminance(image, content_img)
    decoded = log.elapsed()
    log.add(1, seconds_loading=loaded, seconds_encoding=encoded - loaded,
            seconds_adain=renormalised - encoded, seconds_decoding=decoded - renormalised)
    log.extra["decoder_layer"] = layer
    return image, log.finish(size=int(max(image.shape[:2])), layer=layer)


__all__ = ["adain_target", "blend_weights", "stylize"]
