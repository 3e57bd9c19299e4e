"""Load, resize and save images as NumPy arrays.

An image here is a NumPy array of shape (H, W, 3): height, width, and the three
colour channels in RGB order, with ``uint8`` values 0-255.  (Turning an image
into a network's input tensor is the model's job, e.g. VGG16's ``preprocess``.)

Pillow does the decoding and encoding, so any format it reads works: JPEG,
PNG, GIF, BMP, TIFF, WebP, ...
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def load_image(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Read an image file into an (H, W, 3) ``uint8`` RGB array.

    - The EXIF orientation tag is applied, so photos taken with a rotated
      camera come out the right way up.
    - Grayscale, palette and alpha images are converted to RGB; transparent
      pixels are composited on a white background.
    - With ``max_side``, the image is resized (keeping its aspect ratio) so
      that its longer side is ``max_side`` pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so a damaged file fails here, inside the try
            im = ImageOps.exif_transpose(im)
            img = np.asarray(_to_rgb(im))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    if max_side is not None:
        img = resize_image(img, max_side)
    return img


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow image to mode RGB, putting transparent parts on white."""
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if not has_alpha:
        return im.convert("RGB")
    im = im.convert("RGBA")
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, im).convert("RGB")


def resize_image(img: np.ndarray, max_side: int) -> np.ndarray:
    """Resize a ``uint8`` image so its longer side is ``max_side``, keeping the aspect ratio.

    Uses Lanczos filtering (sharp, with little aliasing when shrinking).
    Works for (H, W, 3) and (H, W) arrays.
    """
    if img.dtype != np.uint8:
        raise TypeError(f"resize_image expects a uint8 image, got dtype {img.dtype}")
    if int(max_side) < 1:
        raise ValueError(f"resize_image: max_side must be >= 1, got {max_side}")
    height, width = img.shape[:2]
    scale = max_side / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))  # Pillow: (W, H)
    if new_size == (width, height):
        return img.copy()
    return np.asarray(Image.fromarray(img).resize(new_size, Image.Resampling.LANCZOS))


def save_image(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write an image to a PNG or JPEG file (chosen by the suffix) and return the path.

    ``img`` is (H, W, 3) or (H, W), either ``uint8`` 0-255 or floating point in
    [0, 1] (values outside are clipped, which is usual after an optimisation).
    Parent folders are created as needed.
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot save image {path}: unknown suffix {path.suffix!r}; "
            f"use one of {', '.join(SAVE_FORMATS)}"
        )
    img = np.asarray(img)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(
            f"cannot save image {path}: expected shape (H, W, 3) or (H, W), got {img.shape}"
        )
    if np.issubdtype(img.dtype, np.floating):
        if not np.all(np.isfinite(img)):
            raise ValueError(f"cannot save image {path}: it contains NaN or Inf")
        img = np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise TypeError(f"cannot save image {path}: expected uint8 or float, got {img.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(img).save(path, format=fmt, **options)
    return path
