"""Weights for blending several style images, shared by Gatys and AdaIN."""

from __future__ import annotations


def blend_weights(weights, count: int, op: str = "stylize") -> list[float]:
    """``weights`` for ``count`` style images, normalised to sum to one.

    ``None`` means equal weights.  Any count mismatch, negative weight or zero sum is
    a ValueError naming ``op`` (``weights`` like ``--style-blend-weights 3,7``).
    """
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ValueError(
            f"{op}: style_blend_weights: got {len(weights)} weight(s) for {count} style image(s)"
        )
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(
            f"{op}: style_blend_weights must be >= 0 with a positive sum, got {weights}"
        )
    return [w / sum(weights) for w in weights]
