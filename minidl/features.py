"""What VGG16's layers respond to: activation statistics and feature-map grids.

The ``minidl features`` command (:mod:`minidl.commands.features`) prints these
statistics and saves these grids for an image; lessons call them directly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def activation_stats(array: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, maximum and fraction of exact zeros of ``array``.

    After a ReLU every negative value became 0, so ``zeros`` tells how much of
    the layer is switched off for this image.
    """
    array = np.asarray(array, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "max": float(array.max()),
        "zeros": float(np.mean(array == 0)),
    }


def strongest_channels(array: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` channels of a (C, H, W) array with the largest mean,
    strongest first (ties keep the lower channel index first)."""
    means = array.reshape(array.shape[0], -1).mean(axis=1)
    order = np.argsort(-means, kind="stable")
    return order[: min(count, array.shape[0])]


def save_feature_grid(path: Path, array: np.ndarray, layer: str, count: int) -> Path:
    """Save the ``count`` strongest maps of a (C, H, W) array as a grid in one PNG.

    Uses matplotlib's Agg backend directly (a Figure with a FigureCanvasAgg),
    so it works without a display and leaves pyplot's global state alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    channels = strongest_channels(array, count)
    cols = math.ceil(math.sqrt(len(channels)))
    rows = math.ceil(len(channels) / cols)
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows + 0.6))
    FigureCanvasAgg(fig)
    fig.suptitle(
        f"{layer}: {len(channels)} strongest of {array.shape[0]} channels "
        f"(by mean activation)\neach map scaled to its own range; bright = strong",
        fontsize=9,
    )
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i < len(channels):
            c = int(channels[i])
            ax.imshow(array[c], cmap="viridis", interpolation="nearest")
            ax.set_title(f"{layer} ch {c}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
