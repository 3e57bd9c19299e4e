"""Exercise 12 — Gatys's content and style losses (lesson 12).

Write the two functions below, then check them with

    python -m minidl.grade 12        (or: minidl grade 12)

The grader compares them with the content and style parts of
minidl.style.gatys.stylize_loss (weights 1) and runs gradcheck on both.  You may use
F.gram_matrix and F.mse_loss.
"""

import numpy as np  # noqa: F401  (the usual imports, for your solution)

import minidl  # noqa: F401
import minidl.functional as F  # noqa: F401


def content_loss(feature, target):
    """mean((F − P)²): F the feature map of the image being optimised, P the content
    photo's, both (1, C, H, W).  Return a 0-d Tensor."""
    raise NotImplementedError("exercise: content_loss")


def style_loss(features, target_grams, layer_weights):
    """Σ_l w_l · mean((G_l − A_l)²) over the style layers: ``features`` a list of feature
    maps (1, C_l, H_l, W_l), ``target_grams`` the style image's Gram matrices (1, C_l, C_l)
    (G = F Fᵀ / (C·H·W)), ``layer_weights`` the w_l.  Return a 0-d Tensor."""
    raise NotImplementedError("exercise: style_loss")
