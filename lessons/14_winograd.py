# %% [markdown]
# # Lesson 14 — Winograd: the same convolution with 4× fewer multiplications
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 4 s
# by default, 1 s with `--quick` (on a busy machine, several times that).
#
# im2col + GEMM (lesson 04) spends 9 multiplications per input channel, output
# channel and output pixel of a 3×3 convolution.  Winograd's *minimal filtering*
# (Lavin & Gray, 2015) computes a tile of m×m outputs from an (m+2)×(m+2) input tile
# with only (m+2)² multiplications — for m = 4, 36 instead of 144.  The trick is the
# one behind fast polynomial multiplication: evaluate at a few points, multiply the
# values, interpolate back.
#
# minidl implements it in `minidl/backends/winograd.py` (read its docstring): every
# 3×3 stride-1 convolution may run as Winograd, chosen by the environment variable
# `MINIDL_CONV=im2col|winograd|mec|auto`, read at each call.  This lesson rebuilds the
# algorithm from one dimension up, checks it against im2col, measures its float32
# error, derives its gradients, and times it on the cpu.
#
# Prerequisites: lessons 02 and 04 (convolution as a matrix; im2col and GEMM).

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup

import minidl
import minidl.functional as F
from minidl.backends import mec, threads
from minidl.backends import winograd as W

args = setup("14_winograd", "Lesson 14: Winograd minimal filtering", devices=("cpu",))
rng = np.random.default_rng(14)


def conv_im2col(x, w, padding):
    """minidl's conv2d forced to im2col, on NumPy arrays."""
    with W.conv_algorithm("im2col"):
        return F.conv2d(minidl.tensor(x), minidl.tensor(w), padding=padding).numpy()


# %% [markdown]
# ## 1. One dimension: F(2, 3)
#
# A 3-tap correlation of 4 inputs d gives 2 outputs:
#
#     y0 = d0·g0 + d1·g1 + d2·g2
#     y1 = d1·g0 + d2·g1 + d3·g2          6 multiplications
#
# Winograd's F(2, 3) gets the same two numbers with 4:
#
#     y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]           ⊙: elementwise, 4 products
#
# `G g` depends on the filter only (computed once per filter, not per tile), and
# Bᵀ and Aᵀ hold only 0 and ±1: additions.  `W.matrices(2)` returns (Bᵀ, G, Aᵀ).

# %%
Bt2, G2, At2 = W.matrices(2)
print("Bᵀ =\n", Bt2, "\nG =\n", G2, "\nAᵀ =\n", At2)
d = rng.standard_normal(4)
g = rng.standard_normal(3)
direct = np.array([d[0:3] @ g, d[1:4] @ g])
winograd = At2 @ ((G2 @ g) * (Bt2 @ d))
print("direct:", direct, " winograd:", winograd)
check("F(2,3): Aᵀ[(G g) ⊙ (Bᵀ d)] == the direct 3-tap correlation (float64)",
      winograd, direct, atol=1e-14)

# %% [markdown]
# ### Where the matrices come from
#
# Read d and g as coefficients of polynomials, g(t) = g0 + g1·t + g2·t².  Their
# *product* has degree 3, so 4 values determine it; multiplying polynomials is
# therefore: evaluate both at 4 points, multiply the 4 values (the 4
# multiplications), interpolate (Toom–Cook).  F(2, 3) uses the points 0, 1, −1 and
# ∞ ("the value at ∞" of a polynomial is its top coefficient).  So `G g` is the
# filter polynomial at those points, each row scaled (by 1/2 at ±1, so that Bᵀ
# comes out in integers):

# %%
t0 = G2 @ g
g_at = {point: g[0] + g[1] * point + g[2] * point**2 for point in (0, 1, -1)}
check("G's rows for 1 and -1 give (g0+g1+g2)/2 and (g0-g1+g2)/2", t0[1:3],
      [(g[0] + g[1] + g[2]) / 2, (g[0] - g[1] + g[2]) / 2], atol=1e-15)
check("G g == (g(0), g(1)/2, g(-1)/2, g2): the filter evaluated at 0, 1, -1, ∞",
      t0, [g_at[0], g_at[1] / 2, g_at[-1] / 2, g[2]], atol=1e-15)

# %% [markdown]
# A correlation is the *transpose* of a polynomial product (lesson 03: the
# transposed convolution), so the recipe comes out transposed too: for m outputs
# and points t_k,
#
# * G = diag(s) · V₃, with V₃'s rows (1, t, t²) — evaluate the filter, scaled by s;
# * Aᵀ = V_mᵀ, with V_m's rows (1, t, …, t^(m−1)) — columns are powers of the points;
# * Bᵀ = diag(1/s) · (V_{m+2}⁻¹)ᵀ — the interpolation, transposed, unscaled by s.
#
# (The point ∞ has the row (0, …, 0, 1).)  Built this way from the points 0, ±1, ±2, ∞
# and Lavin & Gray's scales, the result *is* minidl's F(4, 3); for F(2, 3) Lavin &
# Gray flip the sign of the ∞ row of Bᵀ and of the ∞ column of Aᵀ, which cancels.

# %%
def powers(points, n):
    """Rows (1, t, ..., t^(n-1)) for each finite point, then (0, ..., 0, 1) for ∞."""
    finite = [[float(t) ** k for k in range(n)] for t in points]
    return np.array(finite + [[0.0] * (n - 1) + [1.0]])


def toom_cook(points, scales):
    """(Bᵀ, G, Aᵀ) of F(m, 3) with m = len(points) - 1 (plus the point ∞)."""
    m = len(points) - 1
    G = np.diag(scales) @ powers(points, 3)
    At = powers(points, m).T
    Bt = np.diag(1 / np.asarray(scales)) @ np.linalg.inv(powers(points, m + 2)).T
    return Bt, G, At


Bt4, G4, At4 = W.matrices(4)
built4 = toom_cook([0, 1, -1, 2, -2], [1 / 4, -1 / 6, -1 / 6, 1 / 24, 1 / 24, 1])
for name, ours, minidls in zip(("Bᵀ", "G", "Aᵀ"), built4, (Bt4, G4, At4)):
    check(f"F(4,3)'s {name} == Toom-Cook from the points 0, ±1, ±2, ∞", ours, minidls, atol=1e-12)
flip = np.diag([1.0, 1.0, 1.0, -1.0])                    # the sign of the ∞ point
Bt2_built, G2_built, At2_built = toom_cook([0, 1, -1], [1, 1 / 2, 1 / 2, 1])
built2 = (flip @ Bt2_built, G2_built, At2_built @ flip)
for name, ours, minidls in zip(("Bᵀ", "G", "Aᵀ"), built2, (Bt2, G2, At2)):
    check(f"F(2,3)'s {name} == Toom-Cook from 0, ±1, ∞ (∞'s sign flipped in Bᵀ and Aᵀ)",
          ours, minidls, atol=1e-12)

# %% [markdown]
# ## 2. Two dimensions by nesting
#
# Apply the 1-D recipe along rows, then along columns.  One 4×4 input tile d and a
# 3×3 filter g give a 2×2 output tile:
#
#     Y = Aᵀ [ U ⊙ V ] A        U = G g Gᵀ  (the filter, once)     V = Bᵀ d B  (the tile)
#
# 16 elementwise products instead of 2·2·9 = 36.

# %%
tile_in = rng.standard_normal((4, 4))
filt = rng.standard_normal((3, 3))
U = G2 @ filt @ G2.T
V = Bt2 @ tile_in @ Bt2.T
Y = At2 @ (U * V) @ At2.T
reference = conv_im2col(tile_in[None, None], filt[None, None], padding=0)[0, 0]
print("Y =\n", Y)
check("F(2x2,3x3) on one 4x4 tile == F.conv2d (im2col)", Y, reference, atol=1e-14)
check("F(2x2,3x3): 16 products for 4 outputs, 36 with im2col", (U.size, 4 * 9) == (16, 36))

# %% [markdown]
# F(4×4, 3×3) does the same on a 6×6 tile: 36 products for 16 outputs instead of
# 16·9 = 144, **4× fewer**.  Larger tiles would save more, but need more points
# (±1/2, ±3, …), and we will see in section 4 that the points cost precision.

# %%
tile_in = rng.standard_normal((6, 6))
U = G4 @ filt @ G4.T
Y = At4 @ (U * (Bt4 @ tile_in @ Bt4.T)) @ At4.T
check("F(4x4,3x3) on one 6x6 tile == F.conv2d (im2col)", Y,
      conv_im2col(tile_in[None, None], filt[None, None], padding=0)[0, 0], atol=1e-13)
check("F(4x4,3x3): 36 products for 16 outputs, 144 with im2col: 4x fewer",
      (U.size, 16 * 9, 16 * 9 / U.size) == (36, 144, 4.0))

# %% [markdown]
# ## 3. Over channels it becomes GEMMs
#
# A real layer sums over C_in input channels.  The transforms are linear, so the sum
# can be taken *inside*, before Aᵀ … A: for each of the (m+2)² positions (p, q) of a
# transformed tile,
#
#     M[p, q] (C_out × tiles) = U[p, q] (C_out × C_in) @ V[p, q] (C_in × tiles)
#
# — a batch of 36 GEMMs (for m = 4).  im2col's one GEMM spends C_out·C_in·9
# multiplications per output pixel; these spend C_out·C_in·36 per tile of 16 pixels,
# C_out·C_in·2.25 per pixel: 4× less.  `W.transform(mat, z)` applies
# mat · z · matᵀ to every trailing index of z at once, and `W.weight_transform`
# gives U (36, C_out, C_in).  Here is the whole algorithm in three steps:

# %%
def input_tiles(x, padding, tile):
    """d[i, j, c, tiles]: the overlapping (tile+2)² windows of x (N, C, H, W), zero-padded.

    Tile (n, r, t) starts at row r*tile, column t*tile of the padded image; its last
    tiles may reach past the image (zeros): their outputs are cropped at the end.
    """
    n, c, h, w = x.shape
    a = tile + 2
    tiles_h, tiles_w = math.ceil((h + 2 * padding - 2) / tile), math.ceil((w + 2 * padding - 2) / tile)
    padded = np.zeros((c, n, tiles_h * tile + 2, tiles_w * tile + 2), dtype=x.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = x.transpose(1, 0, 2, 3)
    # rows i, i + tile, i + 2*tile, ...: pixel (i, j) of every tile at once
    windows = [padded[:, :, i:i + tiles_h * tile:tile, j:j + tiles_w * tile:tile]
               for i in range(a) for j in range(a)]
    return np.stack(windows).reshape(a, a, c, -1), (n, tiles_h, tiles_w)


def output_image(y_tiles, c_out, layout, tile, out_hw):
    """y_tiles (tile*tile, C_out * tiles) back to images (N, C_out, Ho, Wo)."""
    n, tiles_h, tiles_w = layout
    y = y_tiles.reshape(tile, tile, c_out, n, tiles_h, tiles_w)
    # pixel (i, j) of tile (r, t) is pixel (r*tile + i, t*tile + j) of the image
    y = y.transpose(3, 2, 4, 0, 5, 1).reshape(n, c_out, tiles_h * tile, tiles_w * tile)
    return y[:, :, :out_hw[0], :out_hw[1]]


def winograd_steps(x, w, padding, tile=4):
    """The three steps of W.conv2d, spelled out; returns y and the intermediate arrays."""
    Bt, _, At = W.matrices(tile, x.dtype)
    a, c_out = tile + 2, w.shape[0]
    U = W.weight_transform(w, tile)                                # (a*a, C_out, C_in)
    d, layout = input_tiles(x, padding, tile)
    V = W.transform(Bt, d)                                         # (a*a, C_in, tiles)
    M = np.matmul(U, V)                                            # a*a GEMMs
    y_tiles = W.transform(At, M.reshape(a, a, -1))                 # (tile*tile, C_out*tiles)
    out_hw = (x.shape[2] + 2 * padding - 2, x.shape[3] + 2 * padding - 2)
    return output_image(y_tiles, c_out, layout, tile, out_hw), U, V, M


x = rng.standard_normal((2, 5, 16, 16))
w = rng.standard_normal((7, 5, 3, 3))
y, U, V, M = winograd_steps(x, w, padding=1)
print(f"U {U.shape}, V {V.shape}, M = U @ V {M.shape}: 36 GEMMs of (7 x 5) @ (5 x {V.shape[2]})")
check("the three steps == F.conv2d (im2col), 2 images, 5 -> 7 channels, 16x16",
      y, conv_im2col(x, w, 1), atol=1e-12, rtol=1e-12)

# %% [markdown]
# `W.conv2d(x, w, padding, tile)` is these steps with less copying: the tiles are a
# strided *view*, big images go a band of tile rows at a time, and the output
# transform (`W.output_tiles`) leaves each tile's outputs together, so that they go
# back into the image a row of `tile` numbers at a time rather than one by one.  It
# handles any size: outputs that are not whole tiles are computed in a zero-padded
# last tile, and only its pixels that exist are written.  Against im2col, in float64,
# for odd sizes and both tiles:

# %%
shapes = [  # (N, C_in, H, W), C_out, padding
    ((1, 3, 8, 8), 4, 1),
    ((2, 3, 9, 11), 5, 1),
    ((1, 4, 7, 13), 2, 0),
    ((2, 2, 5, 6), 3, 2),
]
for x_shape, c_out, padding in shapes:
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((c_out, x_shape[1], 3, 3))
    reference = conv_im2col(x, w, padding)
    for tile in W.TILES:
        check(f"W.conv2d tile {tile} == im2col: x {x_shape}, C_out {c_out}, padding {padding} "
              f"-> {reference.shape[2:]}", W.conv2d(x, w, (padding, padding), tile),
              reference, atol=1e-12, rtol=1e-12)

# %% [markdown]
# ## 4. Precision
#
# Exact in exact arithmetic — but not in float32.  Bᵀ multiplies inputs by up to 5,
# Aᵀ by up to 8 = 2³ (the point 2, cubed); the big intermediate values cancel again
# at the end, and what is left of them is their rounding error.  F(2×2) uses only
# 0 and ±1.  We measure the largest error relative to the largest output, against a
# float64 reference, on a 64 → 64 channel layer.

# %%
channels, side = (16, 16) if args.quick else (64, 32)
x64 = rng.standard_normal((1, channels, side, side))
w64 = rng.standard_normal((channels, channels, 3, 3)) / math.sqrt(9 * channels)
x32, w32 = x64.astype(np.float32), w64.astype(np.float32)
reference = conv_im2col(x64, w64, 1)


def relative_error(y):
    return float(np.abs(y - reference).max() / np.abs(reference).max())


error32 = {"im2col": relative_error(conv_im2col(x32, w32, 1)),
           "F(2x2)": relative_error(W.conv2d(x32, w32, (1, 1), tile=2)),
           "F(4x4)": relative_error(W.conv2d(x32, w32, (1, 1), tile=4))}
error64 = {"im2col": 0.0,
           "F(2x2)": relative_error(W.conv2d(x64, w64, (1, 1), tile=2)),
           "F(4x4)": relative_error(W.conv2d(x64, w64, (1, 1), tile=4))}
print(f"{channels} -> {channels} channels, {side}x{side}: max |y - y64| / max |y64|")
print(f"{'algorithm':>10} {'float32':>10} {'float64':>10}")
for name, error in error32.items():
    print(f"{name:>10} {error:10.1e} {error64[name]:10.1e}")
print("largest |entry|:  F(2x2) Bᵀ", np.abs(Bt2).max(), "Aᵀ", np.abs(At2).max(),
      "   F(4x4) Bᵀ", np.abs(Bt4).max(), "Aᵀ", np.abs(At4).max())
check("float32: F(4x4)'s error is larger than im2col's", error32["F(4x4)"] > error32["im2col"])
check("float32: F(4x4)'s error is still below 1e-4 of the largest output", error32["F(4x4)"] < 1e-4)
check("float64: im2col, F(2x2) and F(4x4) agree to 1e-12", max(error64.values()) < 1e-12)
check("F(4x4)'s Aᵀ has entries up to 8 = 2³; F(2x2)'s only 0 and ±1",
      np.abs(At4).max() == 8 and np.abs(At2).max() == 1 and np.abs(Bt2).max() == 1)

# %% [markdown]
# `MINIDL_CONV=winograd` makes `F.conv2d` itself take this path (with the tile size
# `W.TILE`, 4): bit for bit the same float32 numbers as calling `W.conv2d`.

# %%
with W.conv_algorithm("winograd"):
    via_conv2d = F.conv2d(minidl.tensor(x32), minidl.tensor(w32), padding=1).numpy()
check(f"MINIDL_CONV=winograd: F.conv2d == W.conv2d with tile {W.TILE} (float32, identical)",
      via_conv2d, W.conv2d(x32, w32, (1, 1)), atol=0)

# %% [markdown]
# ## 5. Gradients
#
# Training needs two more convolutions per layer, and both are Winograd again:
#
# * **input gradient**: the adjoint of a stride-1 3×3 conv is the 3×3 conv of gy with
#   every filter rotated by 180° and the in/out channels swapped, padding 2 − p
#   (lesson 03: the transposed convolution is a direct conv with the flipped kernel);
# * **weight gradient**: each Winograd step run backwards:
#   dU[p, q] = Σ_tiles (A gY Aᵀ)[p, q] @ V[p, q]ᵀ, then gw = Gᵀ dU G.
#
# Both against autograd through `F.conv2d` (im2col), float64:

# %%
for padding in (0, 1, 2):
    x = minidl.tensor(rng.standard_normal((2, 3, 7, 9)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    with W.conv_algorithm("im2col"):
        y = F.conv2d(x, w, padding=padding)
        gy = rng.standard_normal(y.shape)
        y.backward(minidl.tensor(gy))
    rotated = np.ascontiguousarray(w.numpy()[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    check(f"padding {padding}: input gradient == W.conv2d(gy, rotated, swapped w, padding {2 - padding})",
          W.conv2d(gy, rotated, (2 - padding, 2 - padding)), x.grad, atol=1e-12, rtol=1e-12)
    check(f"padding {padding}: W.conv2d_grad_input == autograd's x.grad",
          W.conv2d_grad_input(gy, w.numpy(), (7, 9), (padding, padding)), x.grad, atol=1e-12, rtol=1e-12)
    check(f"padding {padding}: W.conv2d_grad_weight == autograd's w.grad",
          W.conv2d_grad_weight(x.numpy(), gy, (padding, padding)), w.grad, atol=1e-12, rtol=1e-12)

# %% [markdown]
# And with `MINIDL_CONV=winograd`, autograd's backward of `F.conv2d` runs these two
# functions itself: `minidl.gradcheck` (lesson 01) compares it with central
# differences.

# %%
image = minidl.tensor(rng.standard_normal((1, 2, 6, 5)), requires_grad=True)
kernel = minidl.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
with W.conv_algorithm("winograd"):
    check("gradcheck of F.conv2d with MINIDL_CONV=winograd (float64, 2 -> 3 channels, 6x5)",
          minidl.gradcheck(lambda i, k: F.conv2d(i, k, padding=1), [image, kernel]))

# %% [markdown]
# ## 6. Is it faster?  Where the time goes
#
# 4× fewer multiplications is not 4× less time.  We time the forward convolution of
# VGG16's layers on a 256 px image (channels double as the image halves, so each
# layer has the same multiplications), one image, float32, best of a few runs, with
# `MINIDL_CONV=im2col` and `=winograd`, and split Winograd's time into the steps of
# `winograd_steps` (the output transform includes putting the tiles back into
# images).  Each step is timed on the whole image at once; `W.conv2d` (the black
# line) runs them a band of tile rows at a time, while the band is still in the
# CPU's cache, and splits every copy between the cores, so it takes less than the
# sum of its steps.  Your numbers will differ: the times are printed, not checked.

# %%
if args.quick:
    layers = [(16, 32), (32, 16), (64, 8)]
    repeats = 2
else:
    layers = [(64, 256), (128, 128), (256, 64), (512, 32)]
    repeats = 5


def best_time(fn):
    """The fastest of `repeats` runs, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def forward_time(x, w, algorithm):
    """Milliseconds of F.conv2d(x, w, padding=1) with MINIDL_CONV=algorithm."""
    xt, wt = minidl.tensor(x), minidl.tensor(w)
    with W.conv_algorithm(algorithm):
        return best_time(lambda: F.conv2d(xt, wt, padding=1))


def step_times(x, w, tile=W.TILE):
    """Milliseconds of each step of winograd_steps, padding 1 (best of `repeats`)."""
    Bt, _, At = W.matrices(tile, x.dtype)
    a, c_out, out_hw = tile + 2, w.shape[0], x.shape[2:]
    U = W.weight_transform(w, tile)
    d, layout = input_tiles(x, 1, tile)
    V = W.transform(Bt, d)
    M = np.matmul(U, V)
    return {
        "input transform": best_time(lambda: W.transform(Bt, input_tiles(x, 1, tile)[0])),
        "batched GEMM": best_time(lambda: threads.matmul(U, V)),  # (as W.conv2d: a share per core)
        "output transform": best_time(
            lambda: output_image(W.transform(At, M.reshape(a, a, -1)), c_out, layout, tile, out_hw).copy()),
        "weight transform": best_time(lambda: W.weight_transform(w, tile)),
    }


rows = []
for channels, side in layers:
    x = rng.standard_normal((1, channels, side, side)).astype(np.float32)
    w = (rng.standard_normal((channels, channels, 3, 3)) / math.sqrt(9 * channels)).astype(np.float32)
    totals = {algorithm: forward_time(x, w, algorithm) for algorithm in ("im2col", "winograd")}
    rows.append((f"{channels}->{channels} @ {side} px", totals, step_times(x, w)))

parts = list(rows[0][2])
print(f"{'layer':>20} {'im2col':>8} {'winograd':>9}  |" + "".join(f"{p:>17}" for p in parts) + "  (ms)")
for name, totals, steps in rows:
    print(f"{name:>20} {totals['im2col']:8.1f} {totals['winograd']:9.1f}  |"
          + "".join(f"{steps[p]:17.1f}" for p in parts))

# %%
fig, ax = plt.subplots(figsize=(9, 4.8))
colors = {"im2col": "0.55", "input transform": "tab:orange", "batched GEMM": "tab:blue",
          "output transform": "tab:green", "weight transform": "tab:red"}
for k, (name, totals, steps) in enumerate(rows):
    ax.bar(3 * k, totals["im2col"], color=colors["im2col"], label="im2col (total)" if k == 0 else None)
    bottom = 0.0
    for part in parts:
        ax.bar(3 * k + 1, steps[part], bottom=bottom, color=colors[part], label=part if k == 0 else None)
        bottom += steps[part]
    ax.plot(3 * k + 1, totals["winograd"], "k_", markersize=26, mew=2,
            label="W.conv2d (total)" if k == 0 else None)
ax.set_xticks([3 * k + 0.5 for k in range(len(rows))], [name for name, _, _ in rows])
ax.set_ylabel(f"forward time, ms (best of {repeats})")
ax.set_title("one 3x3 conv, 1 image, float32, cpu: im2col (left) vs Winograd F(4x4) steps (right)")
ax.set_ylim(0, 1.3 * max(max(*totals.values(), sum(steps.values())) for _, totals, steps in rows))
ax.legend(fontsize=9, ncols=3, loc="upper right")
ax.grid(axis="y", alpha=0.3)
savefig(fig, args, "winograd_time.png")

# %% [markdown]
# What the bars show: the batched GEMM (blue) is a fraction of im2col's whole time —
# the multiplications really did shrink about 4× — but the transforms are not free.
# Cutting the image into overlapping tiles and putting the outputs back are NumPy
# copies, and the small transforms read and write every value once more.  Count
# the work per layer, for C channels in and out and P pixels:
#
# * the GEMM saved: ∝ C·C·P;
# * input and output transforms: ∝ C·P — relative to the GEMM, ∝ 1/C;
# * the weight transform (every call: the filters change at each training step):
#   ∝ C·C — relative to the GEMM, ∝ 1/P.
#
# So the narrower the layer, the more of the saving the tile transforms, orange and
# green, eat: on the cpu, below 64 channels they eat all of it (VGG16's first layer,
# 3 channels in, runs 8× slower as Winograd).  On layers with few pixels (512
# channels at 32 px) the weight transform, red, grows.  Winograd pays only for
# layers that are wide enough *and* large enough.  That is the rule
# `MINIDL_CONV=auto` follows on each device, `W.AUTO_RULES`: (fewest channels,
# fewest output pixels) for Winograd, measured on forward and input-gradient times
# (see its comment in `minidl/backends/winograd.py`).

# %%
print("W.AUTO_RULES =", W.AUTO_RULES)
with W.conv_algorithm("auto"):
    for channels, side in layers:
        picks = W.use_winograd("cpu", channels, (side, side), (3, 3), (1, 1), (1, 1), (1, 1))
        other = "mec" if mec.use_mec(channels, channels, (1, 1)) else "im2col"
        print(f"  auto on cpu, {channels}->{channels} at {side} px: {'winograd' if picks else other}")
    min_channels, min_pixels = W.AUTO_RULES["cpu"]
    check("auto on cpu picks Winograd exactly at the rule's thresholds",
          W.use_winograd("cpu", min_channels, (min_pixels, 1), (3, 3), (1, 1), (1, 1), (1, 1))
          and not W.use_winograd("cpu", min_channels - 1, (min_pixels, 1), (3, 3), (1, 1), (1, 1), (1, 1))
          and not W.use_winograd("cpu", min_channels, (min_pixels - 1, 1), (3, 3), (1, 1), (1, 1), (1, 1)))
    check("auto never picks Winograd where it does not apply (stride 2, 1x1 kernel)",
          not W.use_winograd("cpu", 512, (64, 64), (3, 3), (2, 2), (1, 1), (1, 1))
          and not W.use_winograd("cpu", 512, (64, 64), (1, 1), (1, 1), (0, 0), (1, 1)))

# %% [markdown]
# ## 7. Where to go next
#
# * `MINIDL_CONV=auto` (the default) decides per convolution *and* per gradient:
#   3×3, stride 1, dilation 1, padding ≤ 2, and the device's `AUTO_RULES` thresholds;
#   everything else runs as im2col, or on the cpu as MEC (`minidl/backends/mec.py`:
#   im2col that copies only the 3 column shifts and lets BLAS read the row shifts in
#   place) for stride-1 layers with 16 to 64 output channels.  `=im2col`,
#   `=winograd` and `=mec` force one of them, which is how this lesson compared them.
# * `kernels/winograd.cu` is the same three steps as CUDA kernels — input transform,
#   batched GEMM (the GEMM kernel of lesson 04), output transform — and on a GPU (or
#   cuda-emu, which runs the same source on the CPU) the transforms are parallel, so
#   Winograd wins from much smaller layers.  Lesson 04 shows how to run kernels on
#   cuda-emu.

# %%
finish(args)
