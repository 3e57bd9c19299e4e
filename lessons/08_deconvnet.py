# %% [markdown]
# # Lesson 08 — The deconvnet: projecting a unit back to pixels
#
# *Run time on a 2-core laptop CPU: about 20 s (`--quick`: about 4 s).*
#
# What makes a channel of VGG16 fire?  Zeiler & Fergus (2014) took the single
# strongest activation of a channel, set everything else in that layer to zero,
# and ran the network *backwards* to the pixels with three reversed operations:
#
# - **unpool** with the *switches*: each value goes back to the position that won
#   the max-pooling in the forward pass (`max_unpool2d`, lesson 06);
# - **ReLU** on the way back: keep only the positive part of the signal;
# - **transposed convolution** with the same filters (`conv_transpose2d`, lesson 03),
#   the adjoint of the forward convolution — hence the name "deconvnet".
#
# Two relatives differ only at the ReLUs:
#
# | rule | at a ReLU, the backward signal g passes where … |
# |---|---|
# | `gradient` (plain backprop) | the *forward input* was positive |
# | `deconvnet` | *g itself* is positive |
# | `guided` (Springenberg et al. 2015) | both |
#
# `minidl.inversion.deconvnet.project` implements all three with minidl's own
# ops (read `minidl/inversion/deconvnet.py`).  Where no ReLU lies between the unit
# and the image — block1_conv1 — the three must agree, and the projection must be
# the unit's own filter, scaled by its activation.  We check exactly that, then
# look at deeper units.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup, weights_path

import minidl
from minidl.data import sample
from minidl.inversion import deconvnet
from minidl.models import vgg16
from minidl.models.vgg16 import preprocess

args = setup("08_deconvnet", "deconvnet, guided backprop and gradients side by side",
             devices=("cpu", "cuda"))
SIZE = 64 if args.quick else 128
TOP = 3 if args.quick else 4
DEEP_LAYERS = ("block2_conv2",) if args.quick else ("block3_conv3", "block5_conv3")
RULES = ("deconvnet", "guided", "gradient")
model = vgg16(weights=weights_path(args), device=args.device)
photo = sample("grace_hopper", max_side=SIZE)
x = preprocess(photo, args.device)

# %% [markdown]
# ## 1. block1_conv1: the projection is the filter
#
# y[o, r, c] = b[o] + Σ W[o, i, dy, dx] · x[i, r+dy−1, c+dx−1].  Keeping only the
# strongest y[o, r, c] = a and running `conv_transpose2d` back paints a·W[o]
# around (r, c): the adjoint sends a single value back along the weights that
# produced it.

# %%
with minidl.no_grad():
    f1_tensor = model.features(x, "block1_conv1")["block1_conv1"]
f1 = f1_tensor.numpy()[0]
channel = deconvnet.top_channels(f1_tensor, 1)[0]
r, c = np.unravel_index(np.argmax(f1[channel]), f1[channel].shape)
activation = f1[channel, r, c]
weight = model.block1_conv1.weight.numpy()[channel]  # (3, 3, 3)
expected = np.zeros((3, SIZE + 2, SIZE + 2), np.float32)  # padded by 1 so edges need no care
expected[:, r:r + 3, c:c + 3] = activation * weight
expected = expected[:, 1:-1, 1:-1][:, :photo.shape[0], :photo.shape[1]]
print(f"strongest block1_conv1 channel {channel}: activation {activation:.1f} at ({r}, {c})")

projections = {rule: deconvnet.project(model, x, "block1_conv1", channel, rule=rule).numpy()[0]
               for rule in RULES}
check("deconvnet projection of a block1_conv1 unit == activation × its filter",
      projections["deconvnet"], expected, atol=1e-4 * abs(activation))
check("guided == deconvnet at block1_conv1 (no ReLU on the way back)",
      projections["guided"], projections["deconvnet"], atol=0)
check("gradient == deconvnet at block1_conv1", projections["gradient"],
      projections["deconvnet"], atol=0)

# %% [markdown]
# ## 2. Deeper units, three rules side by side
#
# For the strongest channels of deeper layers, each row shows the image patch the
# unit sees (its receptive field, cut where the projection is non-zero) and the
# three projections.  Things to notice:
#
# - **gradient** maps are noisy blobs: plain backprop lets negative evidence
#   through, and positive and negative contributions cancel into speckle;
# - **deconvnet** projections show edges and the shape the channel likes, with a
#   grid-like texture: its ReLU ignores which units were on in the forward pass;
# - **guided** backprop is the cleanest: only evidence that was both present in
#   the image and positive for the unit.  At block5_conv3 the receptive field
#   (196 px) covers the whole image, and guided maps look like a line drawing of
#   the face — the reason guided backprop became popular, and a warning that
#   such pictures show the image as much as the unit.
#
# A projection is zero outside the unit's receptive field (lesson 07;
# `deconvnet.receptive_field` gives its box): no pixel outside it can change the
# unit, whatever the rule.  (Zero up to rounding: with Winograd's convolution
# algorithm — `MINIDL_CONV=winograd`, and the default for the wide layers — the
# float32 tile transforms leave values about 10⁻⁶ of the largest just outside
# the field; with `MINIDL_CONV=im2col` they are exact zeros.)


# %%
def to_rgb(p):
    """A (3, H, W) BGR projection as an RGB picture: 0 is mid-grey, and the
    99.5th percentile of |p| full contrast (a few extreme pixels would grey out the rest)."""
    rgb = p[::-1].transpose(1, 2, 0)
    return np.clip(0.5 + 0.5 * rgb / (np.percentile(np.abs(rgb), 99.5) + 1e-12), 0, 1)


def outside(p, box):
    """The largest |value| of a (3, H, W) projection outside the box (top, left,
    bottom, right), relative to the largest inside."""
    top, left, bottom, right = (max(v, 0) for v in box)
    inside = np.zeros(p.shape[1:], bool)
    inside[top:bottom, left:right] = True
    return float(np.abs(p[:, ~inside]).max(initial=0) / np.abs(p[:, inside]).max())


for layer in DEEP_LAYERS:
    with minidl.no_grad():
        feats = model.features(x, layer)[layer]
    channels = deconvnet.top_channels(feats, TOP)
    fig, axes = plt.subplots(len(channels), 4, figsize=(8, 2.2 * len(channels)))
    leak = 0.0
    for row, ch in zip(np.atleast_2d(axes), channels):
        i, j = np.unravel_index(np.argmax(feats.numpy()[0, ch]), feats.shape[2:])
        box = deconvnet.receptive_field(layer, i, j)
        rows, cols = slice(max(box[0], 0), box[2]), slice(max(box[1], 0), box[3])
        maps = {rule: deconvnet.project(model, x, layer, ch, rule=rule).numpy()[0]
                for rule in RULES}
        leak = max(leak, *(outside(m, box) for m in maps.values()))
        row[0].imshow(photo[rows, cols])
        row[0].set_ylabel(f"ch {ch}", fontsize=8)
        for ax, rule in zip(row[1:], RULES):
            ax.imshow(to_rgb(maps[rule][:, rows, cols]))
            ax.set_title(rule if ch == channels[0] else "", fontsize=9)
        for ax in row:
            ax.set_xticks([]), ax.set_yticks([])
    size = box[2] - box[0]
    check(f"{layer}: every projection is zero outside the unit's {size}x{size} receptive field "
          f"(largest value outside: {leak:.0e} of the largest inside)", leak < 1e-5)
    fig.suptitle(f"{layer}: the {len(channels)} strongest channels (patch, then the three rules)")
    savefig(fig, args, f"projections_{layer}.png")

# %% [markdown]
# The `gradient` rule is nothing but backpropagation: the same picture comes out
# of autograd, as the gradient of the unit's activation a with respect to the
# image, times a (the projection starts from a, not from 1).

# %%
layer, ch = DEEP_LAYERS[-1], channels[0]
i, j = deconvnet.strongest_position(model, x, layer, ch)
xg = preprocess(photo, args.device)
xg.requires_grad = True
unit = model.features(xg, layer)[layer][0, ch, i, j]
unit.backward()
by_autograd = unit.item() * xg.grad.numpy()[0]
by_rule = deconvnet.project(model, x, layer, ch, rule="gradient").numpy()[0]
check(f"project(rule='gradient') == activation × autograd's input gradient ({layer}, ch {ch})",
      by_rule, by_autograd, atol=1e-5 * np.abs(by_autograd).max())

# %% [markdown]
# ## What we learned
# - The deconvnet runs the network backwards with unpooling (switches), a ReLU
#   and transposed convolutions: the *adjoint* of each layer, not its inverse.
# - At the first layer all three rules give the filter itself times the activation.
# - Deeper, the rules differ only at the ReLUs; guided backprop gives the
#   cleanest pictures of what a unit detects.

# %%
finish(args)
