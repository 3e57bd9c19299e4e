# %% [markdown]
# # Lesson 02 — Convolution is a matrix
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 2 s by default,
# 2 s with `--quick`.
#
# A convolution layer is *linear* in its input: conv(a·x + b·x') = a·conv(x) + b·conv(x').
# Every linear map between finite vectors is a matrix, so there is a matrix C with
#
#     vec(conv2d(x, K)) = C · vec(x).
#
# We never build C in practice — it is enormous and almost all zeros — but building it
# once for a tiny case makes everything that follows obvious: the transposed
# convolution of lesson 03 is Cᵀ, and the GEMM of lesson 04 is C with its zeros
# squeezed out.
#
# Prerequisites: lesson 01 (autograd). Exercise: `lessons/exercises/02_convolution.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup

import minidl
import minidl.functional as F

args = setup("02_convolution_as_matrix", "Lesson 02: convolution as a matrix")
f64 = np.float64

# %% [markdown]
# ## 1. The definition, as a loop
#
# Deep-learning "convolution" is *cross-correlation*: slide the kernel over the input
# and take the dot product at every position, no kernel flip.  The d2l.ai textbook's
# example: a 3×3 input 0…8 and the kernel [[1, 2], [3, 4]].

# %%
def corr2d(X, K):
    """Output[i, j] = sum over the window at (i, j) of X * K — the definition."""
    kh, kw = K.shape
    out = np.zeros((X.shape[0] - kh + 1, X.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (X[i:i + kh, j:j + kw] * K).sum()
    return out


X = np.arange(9.0).reshape(3, 3)
K = np.array([[1.0, 2.0], [3.0, 4.0]])
d2l = [[27.0, 37.0], [57.0, 67.0]]
check("d2l's loop example: corr2d(0..8, [[1,2],[3,4]]) == [[27,37],[57,67]]", corr2d(X, K), d2l, atol=0)
as4d = lambda a: minidl.tensor(a[None, None], dtype=f64)  # (H, W) -> (1, 1, H, W)
check("minidl's conv2d gives the same numbers", F.conv2d(as4d(X), as4d(K))[0, 0], d2l, atol=0)

# %% [markdown]
# ## 2. Building C column by column
#
# Column j of a matrix is what it does to the j-th basis vector.  So: for each of the
# 16 pixels of a 4×4 input, make the image that is 1 at that pixel and 0 elsewhere,
# convolve it, and flatten the 2×2 result into column j.  A 4×4 input and a 3×3
# kernel give a (2·2) × (4·4) = 4 × 16 matrix.

# %%
def conv_matrix(kernel, input_hw, stride=1, padding=0):
    """The matrix C of conv2d(·, kernel) on one channel, built from basis images."""
    h, w = input_hw
    columns = []
    for j in range(h * w):
        basis = np.zeros(h * w)
        basis[j] = 1.0
        out = F.conv2d(as4d(basis.reshape(h, w)), as4d(kernel), stride=stride, padding=padding)
        columns.append(out.numpy().reshape(-1))
    return np.stack(columns, axis=1)


rng = np.random.default_rng(2)
kernel = rng.integers(1, 10, size=(3, 3)).astype(f64)   # no zero taps, so zeros in C are structural
C = conv_matrix(kernel, (4, 4))
print("kernel =\n", kernel, "\nC has shape", C.shape)
check("a 4x4 input and a 3x3 kernel give a 4 x 16 matrix", C.shape == (4, 16))

x = rng.standard_normal((4, 4))
check("C · vec(x) == conv2d(x)", C @ x.reshape(-1),
      F.conv2d(as4d(x), as4d(kernel)).numpy().reshape(-1), atol=1e-12)
nonzeros = (C != 0).sum(axis=1)
print("non-zeros per row:", nonzeros)
check("every row holds the 9 kernel taps and nothing else", np.all(nonzeros == 9))
check("each row is the kernel, laid out along the input's rows",
      C[0].reshape(4, 4)[:3, :3], kernel, atol=0)

# %% [markdown]
# The picture: each row is the kernel, unrolled onto the 4×4 grid and shifted.  Row
# 1 is row 0 moved one pixel right; row 2 is row 0 moved one *input row* (4 columns)
# right.  This banded structure with a repeating block is a *doubly block Toeplitz*
# matrix.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 2.8), gridspec_kw={"width_ratios": [1, 4]})
axes[0].imshow(kernel, cmap="viridis")
axes[0].set_title("kernel K (3x3)")
for (i, j), v in np.ndenumerate(kernel):
    axes[0].text(j, i, f"{v:.0f}", ha="center", va="center", color="w")
axes[1].imshow(C, cmap="viridis")
for (i, j), v in np.ndenumerate(C):
    if v:
        axes[1].text(j, i, f"{v:.0f}", ha="center", va="center", color="w", fontsize=8)
axes[1].set_title("C (4 x 16): row r = output pixel r, column j = input pixel j")
axes[1].set_xticks(range(16))
axes[1].set_yticks(range(4))
savefig(fig, args, "conv_matrix.png")

# %% [markdown]
# ## 3. Stride and padding only change which rows exist
#
# Padding adds rows for output pixels whose window hangs over the border (those rows
# lose the taps that fall outside); stride keeps every s-th row.  Here a 6×6 input,
# padding 1, stride 2: a 9 × 36 matrix.  (In `--quick` mode, a 5×5 input.)

# %%
n = 5 if args.quick else 6
C2 = conv_matrix(kernel, (n, n), stride=2, padding=1)
x2 = rng.standard_normal((n, n))
out_hw = F.conv2d(as4d(x2), as4d(kernel), stride=2, padding=1).shape[2:]
print(f"{n}x{n} input, stride 2, padding 1: C is {C2.shape}, output {out_hw}")
check("with stride 2 and padding 1, C · vec(x) == conv2d(x, stride=2, padding=1)", C2 @ x2.reshape(-1),
      F.conv2d(as4d(x2), as4d(kernel), stride=2, padding=1).numpy().reshape(-1), atol=1e-12)
check("border rows lose the taps that fall on the padding (fewer than 9 non-zeros)",
      (C2 != 0).sum(axis=1).min() < 9 and (C2 != 0).sum(axis=1).max() <= 9)

fig, ax = plt.subplots(figsize=(11, 3))
ax.imshow(C2 != 0, cmap="Greys", aspect="auto")
ax.set_title(f"non-zeros of C for a {n}x{n} input, 3x3 kernel, stride 2, padding 1 ({C2.shape[0]} x {C2.shape[1]})")
ax.set_xlabel("input pixel")
ax.set_ylabel("output pixel")
savefig(fig, args, "conv_matrix_stride2_pad1.png")

# %% [markdown]
# ## 4. Why nobody stores C
#
# For one 224×224 channel and a 3×3 kernel with padding 1, C has 50176² ≈ 2.5·10⁹
# entries of which 9 per row are non-zero — 0.018 %.  The GEMM of lesson 04 keeps
# only those taps.
#
# ## 5. The gradient already uses Cᵀ
#
# If y = C x then dL/dx = Cᵀ · dL/dy.  Autograd's backward of conv2d must therefore
# multiply by Cᵀ — the *transposed convolution*, the subject of lesson 03.

# %%
side = 224
print(f"224x224, 3x3, padding 1: C would have {side**4:.3g} entries, "
      f"non-zero fraction {9 / side**2:.2e}")
xt = minidl.tensor(x[None, None], dtype=f64, requires_grad=True)
gy = rng.standard_normal((2, 2))
F.conv2d(xt, as4d(kernel)).backward(minidl.tensor(gy[None, None], dtype=f64))
check("conv2d's input gradient == Cᵀ · dL/dy", xt.grad, (C.T @ gy.reshape(-1)).reshape(1, 1, 4, 4),
      atol=1e-12)

# %%
finish(args)
