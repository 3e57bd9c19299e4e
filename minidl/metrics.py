"""How close two images are, in numbers: MSE, PSNR, SSIM, and VGG16 distances.

All functions take ``uint8`` RGB images of shape (H, W, 3) and return a float.

* :func:`mse` and :func:`psnr` compare pixels on the 0-1 scale;
  ``psnr = 10 log10(1 / mse)`` in decibels (higher is closer, ``inf`` if equal).
* :func:`ssim` is the structural similarity of Wang et al. (2004) on the
  luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (what most papers report), with
  minidl's :func:`minidl.functional.ssim` (11x11 Gaussian window, sigma 1.5).
  1 means identical; it rewards matching local structure and contrast rather
  than exact values, which is closer to what a person sees than MSE.
* :func:`gram_distance` is the Gatys style loss between two images: the mean
  squared difference of their Gram matrices at each style layer, summed;
  :func:`content_distance` the mean squared difference of one layer's features.
  Both say how far an image is from a style or a content in VGG16's eyes.
"""

from __future__ import annotations

import math

import numpy as np

STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYER = "block4_conv2"
LUMA = np.array([0.299, 0.587, 0.114])


def _check_image(name: str, image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"metrics: {name} must be an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"metrics: {name} must be uint8 (0-255), got dtype {image.dtype}")
    return image


def _pair(a, b, op: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_image("a", a), _check_image("b", b)
    if a.shape != b.shape:
        raise ValueError(f"{op}: images must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def mse(a, b) -> float:
    """Mean squared difference of the pixels, on the 0-1 scale."""
    a, b = _pair(a, b, "mse")
    diff = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
    return float(np.mean(diff * diff))


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(1 / mse)``; ``inf`` for equal images."""
    error = mse(a, b)
    return math.inf if error == 0 else 10.0 * math.log10(1.0 / error)


def luminance(image) -> np.ndarray:
    """The (H, W) luminance of an RGB image, on the 0-1 scale (ITU-R BT.601 weights)."""
    return _check_image("image", image).astype(np.float64) @ LUMA / 255.0


def ssim(a, b) -> float:
    """Structural similarity (Wang et al., 2004) of the two images' luminance."""
    from minidl import functional as F
    from minidl.tensor import Tensor

    a, b = _pair(a, b, "ssim")
    if min(a.shape[:2]) < 11:
        raise ValueError(f"ssim: images {a.shape} are smaller than the 11x11 window")
    ya, yb = (Tensor(luminance(x)[None, None]) for x in (a, b))
    return float(F.ssim(ya, yb, data_range=1.0).item())


def _features(model, image, layers):
    from minidl.models.vgg16 import preprocess

    return model.features(preprocess(image, model.device), layers)


def gram_distance(a, b, model, layers=STYLE_LAYERS) -> float:
    """Sum over ``layers`` of the mean squared difference of the Gram matrices.

    The images may differ in size: a Gram matrix is (C, C) whatever the size.
    ``model`` is a VGG16 (:func:`minidl.models.vgg16`).
    """
    from minidl import functional as F

    a, b = _check_image("a", a), _check_image("b", b)
    fa, fb = _features(model, a, layers), _features(model, b, layers)
    total = 0.0
    for layer in layers:
        diff = F.gram_matrix(fa[layer]).numpy() - F.gram_matrix(fb[layer]).numpy()
        total += float(np.mean(diff.astype(np.float64) ** 2))
    return total


def content_distance(a, b, model, layer: str = CONTENT_LAYER) -> float:
    """Mean squared difference of the two images' features at ``layer`` (same size needed)."""
    a, b = _pair(a, b, "content_distance")
    fa, fb = _features(model, a, layer)[layer], _features(model, b, layer)[layer]
    diff = fa.numpy().astype(np.float64) - fb.numpy().astype(np.float64)
    return float(np.mean(diff * diff))
