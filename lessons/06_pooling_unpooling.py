# %% [markdown]
# # Lesson 06 — Max pooling, switches and unpooling
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 3 s by default,
# 3 s with `--quick`.
#
# Max pooling keeps the largest value of each window and forgets *where* it was.
# Zeiler & Fergus's deconvnet (lesson 08) needs to undo a pooling layer on the way
# back to pixels, and that is impossible — three quarters of the values are gone —
# unless the forward pass remembers the position of each maximum: the *switches*.
# `F.max_pool2d(x, 2, return_indices=True)` returns them, and `F.max_unpool2d` puts
# each pooled value back at its switch, zeros elsewhere.
#
# We work an 8×8 example by hand, then show that unpooling is the *adjoint* of
# "read the values at the switches" — the same relation as conv2d and its transpose
# in lesson 03 — and that it is exactly what max pooling's backward does.
#
# Prerequisites: lesson 03 (adjoints).  Exercise: `lessons/exercises/06_pooling.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup
from matplotlib.patches import Rectangle

import minidl
import minidl.functional as F
from minidl.data import sample

args = setup("06_pooling_unpooling", "Lesson 06: max pooling, switches and unpooling")
f64 = np.float64
rng = np.random.default_rng(6)

# %% [markdown]
# ## 1. A worked 8×8 example
#
# The numbers 0…63 in random order (no ties, so every window has one maximum).  A
# 2×2 window with stride 2 tiles the 8×8 grid into 16 windows.  The indices are, as
# in PyTorch, positions in the flattened 8×8 plane: index = row · 8 + column.

# %%
grid = rng.permutation(64).reshape(8, 8).astype(f64)
x = minidl.tensor(grid[None, None], dtype=f64)
pooled, switches = F.max_pool2d(x, 2, return_indices=True)
print("x =\n", grid.astype(int))
print("max_pool2d(x, 2) =\n", pooled.numpy()[0, 0].astype(int))
print("switches (row * 8 + col) =\n", switches.numpy()[0, 0])

rows, cols = np.divmod(switches.numpy()[0, 0], 8)
windows = grid.reshape(4, 2, 4, 2).transpose(0, 2, 1, 3).reshape(4, 4, 4)
check("each pooled value is its window's maximum", pooled[0, 0], windows.max(axis=2), atol=0)
check("each switch points at that maximum in x", grid[rows, cols], windows.max(axis=2), atol=0)
check("each switch lies inside its own window",
      np.all(rows // 2 == np.arange(4)[:, None]) and np.all(cols // 2 == np.arange(4)[None, :]))

unpooled = F.max_unpool2d(pooled, switches, 2)
u = unpooled.numpy()[0, 0]
per_window = (u.reshape(4, 2, 4, 2) != 0).sum(axis=(1, 3))
check("unpool(pool(x)) has exactly one non-zero per 2x2 window", np.all(per_window == 1))
check("... at the argmax, holding the max; zeros elsewhere", u, np.where(u != 0, grid, 0), atol=0)
check("... so it equals x on the switches", u[rows, cols], grid[rows, cols], atol=0)


def draw_grid(ax, values, title, highlight=None, step=2, dots=False):
    ax.imshow(values, cmap="Greys", vmin=-20, vmax=90)
    for (a, b), v in np.ndenumerate(values):
        ax.text(b, a, "·" if dots and not v else f"{v:.0f}", ha="center", va="center",
                fontsize=8, color="crimson" if highlight is not None and highlight[a, b] else "k")
    n = values.shape[0]
    for t in range(0, n + 1, step):
        ax.axhline(t - 0.5, color="steelblue", lw=1.5)
        ax.axvline(t - 0.5, color="steelblue", lw=1.5)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


mask = np.zeros((8, 8), bool)
mask[rows, cols] = True
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), gridspec_kw={"width_ratios": [8, 4, 8]})
draw_grid(axes[0], grid, "x: 2x2 windows, maxima (switches) in red", mask)
draw_grid(axes[1], pooled.numpy()[0, 0], "max_pool2d(x, 2)", step=1)
draw_grid(axes[2], u, "max_unpool2d(pooled, switches, 2)", mask, dots=True)
for r, c in zip(rows.ravel(), cols.ravel()):
    axes[0].add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="crimson", lw=2))
savefig(fig, args, "worked_8x8.png")

# %% [markdown]
# ## 2. Unpooling is the adjoint of reading the switches
#
# Call S the linear map "read x at the switches": S x = the 16 values x[switch].  (For
# the x that made the switches, S x is the pooled output.)  Its transpose Sᵀ takes 16
# numbers and writes each at its switch, zeros elsewhere — that is `max_unpool2d`.
# The adjoint identity ⟨S a, b⟩ = ⟨a, Sᵀ b⟩ holds for *every* a and b, not only for
# the image that chose the switches.

# %%
def read_switches(a, idx):
    """S a: the values of a at the switch positions (per image and channel)."""
    n, c, h, w = a.shape
    flat = a.reshape(n, c, h * w)
    return np.take_along_axis(flat, idx.reshape(n, c, -1), axis=2).reshape(idx.shape)


xs = minidl.tensor(rng.standard_normal((2, 3, 8, 8)), dtype=f64)
_, idx = F.max_pool2d(xs, 2, return_indices=True)
a = rng.standard_normal(xs.shape)
b = rng.standard_normal(idx.shape)
lhs = float((read_switches(a, idx.numpy()) * b).sum())
rhs = float((a * F.max_unpool2d(minidl.tensor(b, dtype=f64), idx, 2).numpy()).sum())
check(f"⟨S a, b⟩ == ⟨a, unpool(b)⟩ for random a, b ({lhs:.6f})", lhs, rhs, atol=1e-12)

# %% [markdown]
# ## 3. ... and that is max pooling's backward
#
# Max pooling is locally linear: near x, pool(x + δ) = S(x + δ) with S fixed by x's
# switches.  So its gradient is Sᵀ applied to the upstream gradient: unpooling.  The
# deconvnet's "unpool with switches" is therefore the same operation as the gradient
# — lesson 08 shows where deconvnet and gradient part ways (at the ReLU).

# %%
xg = minidl.tensor(rng.standard_normal((2, 3, 8, 8)), dtype=f64, requires_grad=True)
out, idx = F.max_pool2d(xg, 2, return_indices=True)
g = minidl.tensor(rng.standard_normal(out.shape), dtype=f64)
out.backward(g)
check("max_pool2d's input gradient == max_unpool2d(dL/dy, switches)", xg.grad,
      F.max_unpool2d(g, idx, 2), atol=0)

# %% [markdown]
# With *overlapping* windows (k3 s2, as in AlexNet) two windows can pick the same
# pixel.  The gradient then *adds* both contributions (the sum rule of lesson 01),
# while `max_unpool2d` *writes*, so one value overwrites the other: with overlap,
# unpooling is no longer exactly the adjoint.

# %%
xo = minidl.tensor(rng.standard_normal((1, 1, 9, 9)), dtype=f64, requires_grad=True)
out, idx = F.max_pool2d(xo, 3, stride=2, return_indices=True)
ones = minidl.ones(out.shape, dtype=f64)
out.backward(ones)
shared = idx.numpy().size - np.unique(idx.numpy()).size
print(f"k3 s2 on 9x9: {idx.numpy().size} windows but only {np.unique(idx.numpy()).size} distinct switches")
check("overlapping windows: the gradient adds, so its sum is the number of windows",
      float(xo.grad.sum()), float(idx.numpy().size))
written = F.max_unpool2d(ones, idx, 3, stride=2, output_size=(9, 9))
check(f"... while unpooling writes: its sum is the number of distinct switches ({shared} lost)",
      float(written.sum()), float(np.unique(idx.numpy()).size))

# %% [markdown]
# ## 4. What unpooling does to a photo
#
# Pool a photo by 2 and by 4, then unpool: the result keeps 1 pixel in 4 (in 16) —
# the brightest of each window per colour channel — on a black background.  This
# sparse, dotted image is what the deconvnet feeds to the layers below.  Each colour
# channel has its own switches; where the red, green and blue maxima of a window
# fall on different pixels, the dots come out in pure colours.

# %%
side = 64 if args.quick else 256
photo = sample("grace_hopper", max_side=side * 2)[:side, side // 2:side // 2 + side]
img = minidl.tensor(photo.transpose(2, 0, 1)[None] / 255.0, dtype=f64)
panels = [(photo / 255.0, "photo")]
for factor in (2, 4):
    p, s = F.max_pool2d(img, factor, return_indices=True)
    back = F.max_unpool2d(p, s, factor).numpy()[0].transpose(1, 2, 0)
    kept = (back != 0).any(axis=2).mean()
    panels.append((back, f"unpool(pool(x, {factor})): {kept:.0%} of pixels lit"))
    check(f"pool by {factor} then unpool keeps at most one value per window and channel",
          (back != 0).sum() <= 3 * (side // factor) ** 2)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
rows_zoom, cols_zoom = slice(side // 2, side // 2 + side // 3), slice(side // 3, 2 * side // 3)
for ax, (panel, title) in zip(axes, panels):
    ax.imshow(panel[rows_zoom, cols_zoom], interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
savefig(fig, args, "unpool_photo.png")

# %%
finish(args)
