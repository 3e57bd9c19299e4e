# %% [markdown]
# # Lesson 03 — Transposed convolution, three ways (and why it is not a "deconvolution")
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 4 s by default,
# 3 s with `--quick`.
#
# Lesson 02 wrote conv2d as a matrix: y = C x.  The *transposed convolution* is the
# map y ↦ Cᵀ y.  It takes a small map back to the size of the big one, which is why
# decoders, GAN generators and segmentation nets use it for upsampling.  We look at
# it three ways and prove them equal to `F.conv_transpose2d`:
#
# 1. **Cᵀ** — literally the transposed matrix;
# 2. **painting** — every input pixel paints a copy of the kernel, scaled by its
#    value, at stride-spaced positions; overlaps add up;
# 3. **a direct convolution** — stuff s − 1 zeros between the input pixels, pad
#    by d(k − 1) − p, and run an ordinary conv2d with the kernel flipped and its
#    in/out channels swapped (Dumoulin & Visin's conv-arithmetic guide).
#
# Then the size arithmetic (which input sizes it can return to, and `output_padding`),
# the fact that conv2d's backward *is* this op, and why Cᵀ is not an inverse.
#
# Prerequisites: lesson 02.  Exercise: `lessons/exercises/03_transposed_convolution.py`.

# %%
import itertools

import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup

import minidl
import minidl.functional as F
from minidl.data import sample

args = setup("03_transposed_convolution", "Lesson 03: transposed convolution three ways")
f64 = np.float64
rng = np.random.default_rng(3)


def T(a):
    """A float64 minidl tensor; 2-D arrays become (1, 1, H, W)."""
    a = np.asarray(a, dtype=f64)
    return minidl.tensor(a[None, None] if a.ndim == 2 else a, dtype=f64)


# %% [markdown]
# ## 1. Painting: d2l.ai's loop
#
# For each input pixel, add `X[i, j] * K` into the output at (i, j).  With a 2×2
# input and a 2×2 kernel the four painted copies overlap in the middle.

# %%
def trans_conv(X, K):
    h, w = K.shape
    Y = np.zeros((X.shape[0] + h - 1, X.shape[1] + w - 1))
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            Y[i:i + h, j:j + w] += X[i, j] * K
    return Y


X = np.array([[0.0, 1.0], [2.0, 3.0]])
K = np.array([[0.0, 1.0], [2.0, 3.0]])
d2l = [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
check("d2l's loop: trans_conv([[0,1],[2,3]], [[0,1],[2,3]]) == [[0,0,1],[0,4,6],[4,12,9]]",
      trans_conv(X, K), d2l, atol=0)
check("F.conv_transpose2d gives the same", F.conv_transpose2d(T(X), T(K))[0, 0], d2l, atol=0)
check("d2l's padding=1 variant: padding crops the border, leaving [[4]]",
      F.conv_transpose2d(T(X), T(K), padding=1)[0, 0], [[4]], atol=0)
check("d2l's stride=2 variant: the copies no longer overlap",
      F.conv_transpose2d(T(X), T(K), stride=2)[0, 0],
      [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]], atol=0)

fig, axes = plt.subplots(1, 5, figsize=(12, 2.6))
for ax, (i, j) in zip(axes, itertools.product(range(2), range(2))):
    part = np.zeros((3, 3))
    part[i:i + 2, j:j + 2] = X[i, j] * K
    ax.imshow(part, cmap="Blues", vmin=0, vmax=12)
    ax.set_title(f"X[{i},{j}]={X[i, j]:.0f} paints {X[i, j]:.0f}·K")
    for (a, b), v in np.ndenumerate(part):
        ax.text(b, a, f"{v:.0f}", ha="center", va="center")
total = trans_conv(X, K)
axes[4].imshow(total, cmap="Blues", vmin=0, vmax=12)
axes[4].set_title("sum = conv_transpose2d")
for (a, b), v in np.ndenumerate(total):
    axes[4].text(b, a, f"{v:.0f}", ha="center", va="center")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
savefig(fig, args, "painting_view.png")

# %% [markdown]
# ## 2. The three views, in general
#
# Now with several channels, stride 2, padding 1, `output_padding` 1 and dilation —
# the general case.  minidl stores a transposed-convolution weight as
# (C_in, C_out, kh, kw), as PyTorch does: it is the weight of the conv2d it transposes,
# which maps C_out channels to C_in.

# %%
def output_size(i, k, s, p, d, op):
    """Size of conv_transpose2d's output: the inverse of conv2d's size formula."""
    return (i - 1) * s - 2 * p + d * (k - 1) + 1 + op


def view_matrix(x, w, s, p, d, op):
    """View 1: build C of the conv2d that maps the output back to x's shape, apply Cᵀ."""
    _, c_out, k, _ = w.shape
    out = output_size(x.shape[2], k, s, p, d, op)
    columns = []
    for j in range(c_out * out * out):
        basis = np.zeros(c_out * out * out)
        basis[j] = 1.0
        y = F.conv2d(T(basis.reshape(1, c_out, out, out)), T(w), stride=s, padding=p, dilation=d)
        columns.append(y.numpy().reshape(-1))
    C = np.stack(columns, axis=1)
    return (C.T @ x.reshape(-1)).reshape(1, c_out, out, out), C


def view_painting(x, w, s, p, d, op):
    """View 2: every input pixel adds value * kernel at (i*s, j*s); crop p on each side."""
    c_in, c_out, k, _ = w.shape
    n = x.shape[2]
    full = output_size(n, k, s, 0, d, op)
    canvas = np.zeros((c_out, full, full))
    span = d * (k - 1) + 1
    for c, i, j in itertools.product(range(c_in), range(n), range(n)):
        canvas[:, i * s:i * s + span:d, j * s:j * s + span:d] += x[0, c, i, j] * w[c]
    return canvas[None, :, p:full - p, p:full - p]


def view_direct(x, w, s, p, d, op):
    """View 3: conv2d of the zero-stuffed, padded input with the flipped, channel-swapped kernel."""
    c_in, _, k, _ = w.shape
    n = x.shape[2]
    stuffed = np.zeros((1, c_in, (n - 1) * s + 1, (n - 1) * s + 1))
    stuffed[:, :, ::s, ::s] = x
    q = d * (k - 1) - p                                # padding of the direct conv
    padded = np.pad(stuffed, ((0, 0), (0, 0), (q, q + op), (q, q + op)))
    flipped = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    return F.conv2d(T(padded), T(flipped.copy()), dilation=d).numpy(), padded


cases = [(2, 3, 1, 1, 1, 0), (2, 3, 2, 1, 1, 1), (3, 4, 2, 1, 1, 0), (2, 3, 2, 2, 2, 1)]
for c_in, k, s, p, d, op in cases:
    n = 3
    x = rng.standard_normal((1, c_in, n, n))
    w = rng.standard_normal((c_in, 2, k, k))
    reference = F.conv_transpose2d(T(x), T(w), stride=s, padding=p, output_padding=op, dilation=d)
    label = f"k{k} s{s} p{p} d{d} output_padding {op}"
    check(f"view 1, Cᵀ·x == conv_transpose2d ({label})", view_matrix(x, w, s, p, d, op)[0],
          reference, atol=1e-12)
    check(f"view 2, painting == conv_transpose2d ({label})", view_painting(x, w, s, p, d, op),
          reference, atol=1e-12)
    check(f"view 3, direct conv on the zero-stuffed input == conv_transpose2d ({label})",
          view_direct(x, w, s, p, d, op)[0], reference, atol=1e-12)

# %% [markdown]
# View 1 drawn for d2l's example: C is the 4 × 9 matrix of "convolve a 3×3 image with
# K" (lesson 02); its transpose, 9 × 4, takes the 2×2 input X to the 3×3 result.
# Column j of Cᵀ is what input pixel j paints — view 2 again.

# %%
result, C_d2l = view_matrix(X[None, None], K[None, None], 1, 0, 1, 0)
check("d2l's example through the matrix: Cᵀ · vec(X) == [[0,0,1],[0,4,6],[4,12,9]]", result[0, 0], d2l,
      atol=0)
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), gridspec_kw={"width_ratios": [9, 4, 1.3, 3]})
for ax, mat, title in ((axes[0], C_d2l, "C (4 x 9)"), (axes[1], C_d2l.T, "Cᵀ (9 x 4)"),
                       (axes[2], X.reshape(4, 1), "vec(X)"), (axes[3], result[0, 0], "Cᵀ·vec(X), 3x3")):
    ax.imshow(mat, cmap="Blues", vmin=0, vmax=max(4, mat.max()))
    for (a, b), v in np.ndenumerate(mat):
        ax.text(b, a, f"{v:.0f}", ha="center", va="center", fontsize=8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
savefig(fig, args, "transposed_matrix.png")

# %% [markdown]
# View 3 drawn for one channel, k3 s2 p1 on a 3×3 input: the input's pixels (blue)
# sit 2 apart with zeros between them, a border of d(k−1) − p = 1 zero around them;
# sliding the flipped 3×3 kernel over that gives the 5×5 output.

# %%
x1 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
w1 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
out1, padded1 = view_direct(x1, w1, 2, 1, 1, 0)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [7, 3, 5]})
for ax, img, title in ((axes[0], padded1[0, 0], "zero-stuffed, padded input (7x7)"),
                       (axes[1], w1[0, 0, ::-1, ::-1], "flipped kernel"),
                       (axes[2], out1[0, 0], "= conv_transpose2d (5x5)")):
    ax.imshow(img != 0 if img is padded1[0, 0] else img, cmap="Blues")
    for (a, b), v in np.ndenumerate(img):
        ax.text(b, a, f"{v:.0f}", ha="center", va="center", fontsize=8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
savefig(fig, args, "zero_stuffed_view.png")

# %% [markdown]
# ## 3. Size arithmetic and `output_padding`
#
# conv2d maps size i to o = ⌊(i + 2p − d(k−1) − 1) / s⌋ + 1.  The floor throws away
# a remainder, so with stride s up to s input sizes share one output size (k3 s2 p1:
# 5 and 6 both give 3).  The transpose cannot know which one you came from; it returns
# the smallest, (o − 1)s − 2p + d(k−1) + 1, and `output_padding` = the remainder
# (i + 2p − d(k−1) − 1) mod s adds the missing rows at the bottom/right.  The sweep
# below checks that over every small i, k, s, p, d.

# %%
sweep = itertools.product(range(1, 8 if args.quick else 10), range(1, 5), range(1, 4),
                          range(3), range(1, 3))
tried, wrong, remainders = 0, [], {}
for i, k, s, p, d in sweep:
    span = d * (k - 1) + 1
    if i + 2 * p < span or p > d * (k - 1):       # no conv output, or padding wider than the kernel
        continue
    o = (i + 2 * p - span) // s + 1
    op = (i + 2 * p - span) % s
    if op >= max(s, d):                            # PyTorch's rule: output_padding < max(stride, dilation)
        continue
    y = F.conv_transpose2d(minidl.zeros((1, 1, o, o)), minidl.zeros((1, 1, k, k)), stride=s, padding=p,
                           output_padding=op, dilation=d)
    if y.shape[2:] != (i, i):
        wrong.append((i, k, s, p, d, y.shape))
    tried += 1
    if (k, p, d) == (3, 1, 1):
        remainders[(i, s)] = op
check(f"output_padding = (i + 2p − d(k−1) − 1) mod s restores the input size ({tried} cases)",
      tried > 100 and not wrong)

sizes = sorted({i for i, _ in remainders})
grid = np.array([[remainders.get((i, s), np.nan) for i in sizes] for s in (1, 2, 3)])
fig, ax = plt.subplots(figsize=(8, 2.4))
ax.imshow(grid, cmap="Oranges", vmin=0, vmax=2)
for (a, b), v in np.ndenumerate(grid):
    ax.text(b, a, f"{v:.0f}", ha="center", va="center")
ax.set_xticks(range(len(sizes)), sizes)
ax.set_yticks(range(3), [1, 2, 3])
ax.set_xlabel("input size i of the conv2d")
ax.set_ylabel("stride s")
ax.set_title("output_padding the transpose needs to return to i  (k3, p1)")
savefig(fig, args, "output_padding.png")

# %% [markdown]
# ## 4. conv_transpose2d is the gradient of conv2d — and the adjoint identity
#
# If y = C x then dL/dx = Cᵀ dL/dy (lesson 02), so conv2d's backward *is*
# conv_transpose2d with the same weight, stride, padding and dilation (and the
# output_padding that restores x's size).  Equivalently, for every x and y,
# ⟨C x, y⟩ = ⟨x, Cᵀ y⟩ — which we check with the ops themselves, no matrix.

# %%
x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)), dtype=f64, requires_grad=True)
w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), dtype=f64)
y = F.conv2d(x, w, stride=2, padding=1)                                   # (2, 4, 3, 3)
g = minidl.tensor(rng.standard_normal(y.shape), dtype=f64)
y.backward(g)
check("conv2d's input gradient == conv_transpose2d(dL/dy, same weight, output_padding 1)",
      x.grad, F.conv_transpose2d(g, w, stride=2, padding=1, output_padding=1), atol=1e-12)
lhs = float((y.numpy() * g.numpy()).sum())
rhs = float((x.numpy() * F.conv_transpose2d(g, w, stride=2, padding=1, output_padding=1).numpy()).sum())
check(f"⟨Cx, y⟩ == ⟨x, Cᵀy⟩  ({lhs:.6f})", lhs, rhs, atol=1e-10)

# %% [markdown]
# ## 5. Why "deconvolution" is a misnomer
#
# In signal processing, *deconvolution* undoes a convolution: given a blurred signal,
# recover the sharp one, i.e. apply C⁻¹.  A strided conv cannot be undone: C maps
# i² numbers to o² < i² numbers, so rank(C) ≤ o² < i² and many different inputs give
# the same output.  Cᵀ only returns to the input's *shape*; CᵀC is not the identity.
# The transposed conv earned the name "deconvolution" from Zeiler & Fergus's
# *deconvnet* (lesson 08), which uses it to project features back to pixels — not to
# invert them.
#
# Below: a photo, blurred and subsampled by a k3 s2 p1 conv (a binomial kernel), then
# sent back with the transpose of the same conv.  The result has the right size, but it
# is a quarter as bright (each output pixel receives about 1/s² of the mass), and even
# rescaled by s² = 4 it stays blurred: the detail C threw away is gone.

# %%
n = 6
_, C = view_matrix(np.zeros((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), 2, 1, 1, 1)   # conv 6x6 -> 3x3
rank = np.linalg.matrix_rank(C)
check(f"rank(C) = {rank} < input size {C.shape[1]}: C has no inverse", rank < C.shape[1])

side = 64 if args.quick else 192
photo = sample("grace_hopper", max_side=side * 2)[:side, :side].mean(axis=2) / 255.0
photo = photo[None, None]
blur = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
down = F.conv2d(T(photo), T(blur), stride=2, padding=1)
back = 4 * F.conv_transpose2d(down, T(blur), stride=2, padding=1, output_padding=1).numpy()
error = np.abs(back - photo)[..., 1:-1, 1:-1].mean()
check(f"s²·Cᵀ(C x) is not x: mean |error| {error:.3f} on a photo in [0, 1]", error > 0.01)

fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
for ax, img, title, vmax in ((axes[0], photo, f"x ({side}x{side})", 1),
                             (axes[1], down.numpy(), "C x  (k3 s2 p1 binomial)", 1),
                             (axes[2], back, "s²·Cᵀ C x: right size, blurred", 1),
                             (axes[3], np.abs(back - photo), "|s²·CᵀCx − x| (x4 contrast)", 0.25)):
    ax.imshow(img[0, 0], cmap="gray", vmin=0, vmax=vmax)
    ax.set_title(title)
    ax.axis("off")
savefig(fig, args, "not_an_inverse.png")

# %%
finish(args)
