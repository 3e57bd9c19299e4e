"""Colour helpers for style transfer: keep the content photo's colours.

Gatys et al. (2016, "Preserving colour in neural artistic style transfer")
and jcjohnson/neural-style's ``-original_colors 1`` do *luminance transfer*:
split both images into luminance (Y) and chrominance (U, V) in the YUV colour
space, then take the brightness pattern from the stylised image and the
colours from the content photo.  The brush strokes stay, the palette does not.
"""

from __future__ import annotations

import numpy as np

from minidl.image import resize_image

# Rows: Y, U, V from R, G, B (the analog-TV YUV of neural-style's image.rgb2yuv).
RGB_TO_YUV = np.array(
    [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
)
YUV_TO_RGB = np.linalg.inv(RGB_TO_YUV)


def rgb_to_yuv(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> float64 YUV on the 0-1 scale."""
    return (np.asarray(img, dtype=np.float64) / 255.0) @ RGB_TO_YUV.T


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """Float YUV (0-1 scale) -> (H, W, 3) uint8 RGB, rounded and clipped."""
    rgb = yuv @ YUV_TO_RGB.T
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def match_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The luminance of ``stylized`` with the chrominance of ``content`` (uint8 RGB).

    ``content`` is resized to the stylised image's size if they differ.
    """
    if content.shape != stylized.shape:
        content = resize_image(content, max(stylized.shape[:2]))
        if content.shape != stylized.shape:
            raise ValueError(
                f"match_luminance: content {content.shape} and stylised {stylized.shape} "
                f"have different aspect ratios"
            )
    yuv = rgb_to_yuv(content)
    yuv[..., 0] = rgb_to_yuv(stylized)[..., 0]
    return yuv_to_rgb(yuv)
