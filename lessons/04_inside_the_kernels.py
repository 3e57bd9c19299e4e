# %% [markdown]
# # Lesson 04 — Inside the kernels: im2col, GEMM, and the same on a (emulated) GPU
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 2 s by default,
# on cpu or `--device cuda-emu` (the emulator's first run compiles the kernels with g++:
# add about 20 s); `--quick` about 2 s.
#
# Lesson 02's matrix C is almost all zeros.  Real implementations keep only the
# kernel's taps, by turning the convolution into one dense matrix product:
#
# 1. **im2col** (`F.unfold`) copies every k×k window of the input into a column;
# 2. **GEMM** multiplies the weights, one row per output channel, by those columns.
#
# Its adjoint, **col2im** (`F.fold`), adds columns back onto their windows — and that
# is how the transposed convolution (lesson 03) is computed.  Then we go one level
# down, to the CUDA C that minidl runs on a GPU: `kernels/im2col.cu` and
# `kernels/gemm.cu`.  On a machine without a GPU, device `cuda-emu` compiles the very
# same source for the CPU (each CUDA thread an OS thread), so we can check that it
# computes what NumPy computes.
#
# Prerequisites: lessons 02 and 03.  `--device cpu|cuda-emu|cuda` picks where
# sections 1–3 run; section 5 compares every device this machine has.

# %%
import math
import re

import matplotlib.pyplot as plt
import numpy as np
from _common import available, check, finish, savefig, setup
from matplotlib.patches import Rectangle

import minidl
import minidl.functional as F
from minidl.backends import gemm as gemm_glue
from minidl.backends import get_backend
from minidl.backends.gemm import Matrix
from minidl.paths import kernels_dir

args = setup("04_inside_the_kernels", "Lesson 04: im2col, GEMM and the CUDA kernels",
             devices=("cpu", "cuda-emu", "cuda"))
dev = args.device
dtype = np.float64 if dev == "cpu" else np.float32     # the kernels compute in float32
tol = 1e-12 if dev == "cpu" else 1e-4
rng = np.random.default_rng(4)


def T(a, device=dev):
    return minidl.tensor(np.asarray(a, dtype=dtype if device == dev else np.float32), device=device)


# %% [markdown]
# ## 1. im2col by hand
#
# A 4×4 image holding 0…15 and a 3×3 window: there are 2×2 = 4 window positions, so
# `F.unfold(x, 3)` is a 9 × 4 matrix whose column l is window l, read row by row.
# Pixel 5 (row 1, column 1) lies under all four windows, so it is copied four times:
# im2col trades memory (k² copies of the input) for one big, fast product.

# %%
x = T(np.arange(16.0).reshape(1, 1, 4, 4))
cols = F.unfold(x, 3)
print("F.unfold(x, 3)[0] =\n", cols.numpy()[0].astype(int))
by_hand = np.stack([np.arange(16.0).reshape(4, 4)[r:r + 3, c:c + 3].ravel()
                    for r in range(2) for c in range(2)], axis=1)
check(f"column l of unfold is window l, flattened ({dev})", cols[0], by_hand, atol=0)

# %% [markdown]
# ## 2. Convolution = weights · unfold
#
# With C_in channels the column of a window is C_in·k·k long (channel, kernel row,
# kernel column), exactly the order of a weight (C_out, C_in, k, k) flattened to a
# (C_out, C_in·k·k) matrix.  One matrix product then computes every output channel
# at every position: y = W · unfold(x), reshaped to (C_out, H_out, W_out).  Stride,
# padding and dilation only change which windows unfold reads.

# %%
n_img, c_in, c_out, side = 2, 3, 4, 7
xs = T(rng.standard_normal((n_img, c_in, side, side)))
w = T(rng.standard_normal((c_out, c_in, 3, 3)))
for stride, padding, dilation in ((1, 1, 1), (2, 1, 1), (1, 2, 2)):
    y = F.conv2d(xs, w, stride=stride, padding=padding, dilation=dilation)
    col = F.unfold(xs, 3, dilation=dilation, padding=padding, stride=stride)
    gemm = (w.reshape(c_out, -1) @ col).reshape(y.shape)
    check(f"W · unfold(x) == conv2d(x) (stride {stride}, padding {padding}, dilation {dilation}; {dev})",
          gemm, y, atol=tol, rtol=tol)

# %% [markdown]
# ## 3. fold, the adjoint: overlap counts and the transposed convolution
#
# `F.fold` adds every column back onto its window.  Where windows overlap, values add
# up, so fold(unfold(x)) is x times the number of windows covering each pixel — not x.
# And because fold is unfold's transpose, the transposed convolution is
# fold(Wᵀ · y): spread each output value back over its window, weighted by the kernel.

# %%
ones = T(np.ones((1, 1, side, side)))
count = F.fold(F.unfold(ones, 3, padding=1), (side, side), 3, padding=1)
print("windows covering each pixel (3x3, padding 1):\n", count.numpy()[0, 0].astype(int))
x1 = T(rng.standard_normal((1, 2, side, side)))
round_trip = F.fold(F.unfold(x1, 3, padding=1), (side, side), 3, padding=1)
check(f"fold(unfold(x)) == x * overlap count ({dev})", round_trip,
      x1.numpy() * count.numpy(), atol=tol, rtol=tol)

c_a = rng.standard_normal(F.unfold(x1, 3, padding=1).shape)
lhs = float((F.unfold(x1, 3, padding=1).numpy().astype(np.float64) * c_a).sum())
rhs = float((x1.numpy().astype(np.float64) * F.fold(T(c_a), (side, side), 3, padding=1).numpy()).sum())
check(f"⟨unfold x, c⟩ == ⟨x, fold c⟩: fold is the adjoint of unfold ({dev})", lhs, rhs,
      atol=1e-9 if dev == "cpu" else 1e-3)

y = F.conv2d(xs, w, stride=2, padding=1)                       # (2, 4, 4, 4)
spread = (w.reshape(c_out, -1).transpose(0, 1) @ y.reshape(n_img, c_out, -1))
check(f"conv_transpose2d(y, w) == fold(Wᵀ · y) ({dev})",
      F.fold(spread, (side, side), 3, padding=1, stride=2),
      F.conv_transpose2d(y, w, stride=2, padding=1), atol=tol, rtol=tol)

print(f"the cost: unfold of VGG's block1_conv2 input at 224 px is 64·9 x 224² floats = "
      f"{64 * 9 * 224 * 224 * 4 / 2**20:.0f} MiB, 9 times the input")

# %% [markdown]
# ## 4. The CUDA kernels
#
# `kernels/im2col.cu` gives every entry of the column matrix its own CUDA thread
# (a "grid-stride loop": thread t does entries t, t + all threads, …).  The
# interesting one is `kernels/gemm.cu`.  Its tile sizes are `#define`s, which the
# launch code reads from the file — so we read them too:

# %%
source = (kernels_dir() / "gemm.cu").read_text()
defines = {name: int(value) for name, value in
           re.findall(r"^#define\s+(GEMM_\w+)\s+(\d+)", source, re.MULTILINE)}
print(defines)
TILE_M, TILE_N, BK, THREADS = (defines[k] for k in ("GEMM_TILE_M", "GEMM_TILE_N", "GEMM_BK", "GEMM_THREADS"))
MICRO_M, MICRO_N = TILE_M // THREADS, TILE_N // THREADS
check(f"each of the {THREADS}x{THREADS} threads owns {MICRO_M}x{MICRO_N} outputs, in groups of 4",
      MICRO_M * THREADS == TILE_M and MICRO_N * THREADS == TILE_N and MICRO_M % 4 == MICRO_N % 4 == 0)

# %% [markdown]
# Read as a picture, for the product of a conv layer (M = C_out rows, N = output pixels
# columns, K = C_in·k·k):
#
# * **grid**: C is cut into TILE_M × TILE_N tiles, one thread *block* each;
# * **block**: THREADS × THREADS threads; thread (ty, tx) owns MICRO_M × MICRO_N outputs,
#   in squares of 4 × 4 that lie 4·THREADS apart: four consecutive floats are one
#   16-byte (`float4`) load from shared memory, and the threads of a warp still read
#   consecutive words (no bank conflicts);
# * **K loop**: the block walks along K in steps of BK, copying a TILE_M × BK strip of
#   A and a BK × TILE_N strip of B into shared memory (in runs of four floats, one
#   16-byte load each where the address allows; the next strip is fetched while the
#   current one is used: two buffers), and doing BK outer products in registers.

# %%
def owned(t, tile):
    """The rows (or columns) of its block's tile that thread index t owns."""
    return [4 * t + 4 * THREADS * g + i for g in range(tile // (4 * THREADS)) for i in range(4)]


M, N, K = 96, 196, 27                      # e.g. 96 filters, a 14x14 output, 3 channels x 3x3
fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [1.6, 1, 1.4]})
ax = axes[0]
ax.add_patch(Rectangle((0, 0), N, M, fc="#eef", ec="k"))
for by in range(-(-M // TILE_M)):
    for bx in range(-(-N // TILE_N)):
        ax.add_patch(Rectangle((bx * TILE_N, by * TILE_M), TILE_N, TILE_M, fill=False, ec="steelblue", lw=2))
        ax.text(bx * TILE_N + TILE_N / 2, by * TILE_M + TILE_M / 2, f"block\n({bx},{by})", ha="center",
                va="center", fontsize=8, color="steelblue")
ax.set_xlim(-2, -(-N // TILE_N) * TILE_N + 2)
ax.set_ylim(-(-M // TILE_M) * TILE_M + 2, -2)
ax.set_title(f"grid: C = {M} x {N} in {TILE_M}x{TILE_N} tiles\n(parts outside C compute zeros, write nothing)")
ax.set_aspect("equal")

ax = axes[1]
ax.imshow(np.ones((TILE_M, TILE_N)), cmap="Greys", vmin=0, vmax=8)
for colour, (ty, tx) in zip(("crimson", "royalblue", "seagreen"), ((0, 0), (1, 2), (THREADS - 1, THREADS - 1))):
    cells = [(r, c) for r in owned(ty, TILE_M) for c in owned(tx, TILE_N)]
    ax.scatter([c for _, c in cells], [r for r, _ in cells], marker="s", s=8, color=colour)
for r in range(0, TILE_M + 1, 4 * THREADS):
    ax.axhline(r - 0.5, color="gray", lw=0.5)
for c in range(0, TILE_N + 1, 4 * THREADS):
    ax.axvline(c - 0.5, color="gray", lw=0.5)
groups = "" if MICRO_M == MICRO_N == 4 else f" + {4 * THREADS}g"  # several 4x4 squares?
ax.set_title(f"one block's {TILE_M}x{TILE_N} tile: the {MICRO_M}x{MICRO_N} outputs\n"
             f"of threads (0,0) red, (1,2) blue, ({THREADS - 1},{THREADS - 1}) green\n"
             f"(ty, tx): rows 4ty{groups} + i, columns 4tx{groups} + j")

ax = axes[2]
ax.add_patch(Rectangle((0, 0), K, M, fc="#efe", ec="k"))                  # A: M x K
ax.add_patch(Rectangle((K + 10, -K - 10), N, K, fc="#fee", ec="k"))       # B: K x N above C
ax.add_patch(Rectangle((K + 10, 0), N, M, fc="#eef", ec="k"))             # C
ax.add_patch(Rectangle((BK, 0), min(BK, K - BK), TILE_M, fc="orange", alpha=0.7))
ax.add_patch(Rectangle((K + 10, -K - 10 + BK), TILE_N, min(BK, K - BK), fc="orange", alpha=0.7))
ax.add_patch(Rectangle((K + 10, 0), TILE_N, TILE_M, fill=False, ec="crimson", lw=2))
ax.text(K / 2, M + 8, f"A = W\n{M} x {K}", ha="center", va="top")
ax.text(K + 10 + N / 2, -K - 14, f"B = unfold(x)   {K} x {N}", ha="center")
ax.text(K + 10 + N / 2 + TILE_N / 2, M - 12, "C = W · unfold(x)", ha="center")
ax.set_xlim(-4, K + N + 14)
ax.set_ylim(M + 22, -K - 24)
ax.set_aspect("equal")
ax.axis("off")
ax.set_title(f"block (0,0), second K step: strips of A and B\n({TILE_M}x{BK} and {BK}x{TILE_N}, orange) "
             "go to shared memory")
savefig(fig, args, "gemm_tiling.png")

# %% [markdown]
# ### When C is small: split-K
#
# One block per tile of C means that a small C gives a big GPU little to do.  The
# weight gradient of VGG16's block1_conv2 is only 64 x 576 (9 tiles) but each entry
# sums over every output pixel, 50176 of them at 224 px: 9 blocks for the 132
# multiprocessors of an H100, each walking the whole sum alone.  So the launch code
# (`minidl/backends/gemm.py`) cuts K into slices, computes one partial product per
# slice in the same launch (the slices are the batch: grid z), and adds the
# partials up.  Measured on an H200 that took this product from 55x to 2.5x cuBLAS's
# time.  (`kernels/gram.cu` does the same over slices of pixels.)  What the rule
# decides for a few of VGG16's products at 224 px:

# %%
for what, (m_, n_, k_) in {
    "block1_conv2 forward     ": (64, 224 * 224, 64 * 9),
    "block5_conv3 forward     ": (512, 14 * 14, 512 * 9),
    "block1_conv2 weight grad.": (64, 64 * 9, 224 * 224),
}.items():
    blocks = math.ceil(m_ / TILE_M) * math.ceil(n_ / TILE_N)
    slices = gemm_glue.split_k_slices(blocks, k_)
    print(f"{what}: C {m_:>3} x {n_:<5} = {blocks:>3} blocks, K = {k_:>5}: "
          f"{slices:>2} slice(s) of {math.ceil(k_ / slices)}")

# The same product, split or not, on a kernel device (tiny sizes, so the minimum
# slice length is lowered for the demonstration):
kernel_dev = "cuda" if available("cuda")[0] else "cuda-emu" if available("cuda-emu")[0] else None
if kernel_dev is None:
    print("split-K check skipped: no kernel device here")
else:
    backend = get_backend(kernel_dev)
    a64, b64 = rng.standard_normal((5, 300)), rng.standard_normal((300, 7))
    a, b = backend.xp.asarray(a64, dtype=np.float32), backend.xp.asarray(b64, dtype=np.float32)
    library_value, products = gemm_glue.SPLIT_K_MIN_SLICE, []
    for min_slice in (10**6, 32):  # no split; slices of at least 32 terms
        gemm_glue.SPLIT_K_MIN_SLICE = min_slice
        c = backend.xp.zeros((5, 7), dtype=np.float32)
        backend.gemm(Matrix(c, 5, 7), Matrix(a, 5, 300), Matrix(b, 300, 7))  # C: 1 block
        products.append((gemm_glue.split_k_slices(1, 300), c.get() if kernel_dev == "cuda" else c))
    gemm_glue.SPLIT_K_MIN_SLICE = library_value
    (_, whole), (slices, split) = products
    check(f"5x300 · 300x7 on {kernel_dev}: {slices} slices of K == no split", split, whole,
          atol=1e-4, rtol=1e-4)
    check("... and both equal A @ B", split, a64 @ b64, atol=1e-4, rtol=1e-4)

# %% [markdown]
# ## 5. Three devices, one answer
#
# Now every device this machine has runs the same work: `F.unfold` (the im2col kernel),
# `F.fold` (col2im), `F.conv2d` (im2col + sgemm) and one bare `sgemm` launch on sizes
# that are not multiples of the tile.  cpu computes in NumPy (float64 here, as the
# reference); cuda-emu runs kernels/*.cu on CPU threads; cuda runs them on a GPU when
# CuPy finds one.  float32 kernels agree with float64 to about 1e-6 relative.

# %%
size = 9 if args.quick else 20
x64 = rng.standard_normal((2, 3, size, size))
w64 = rng.standard_normal((8, 3, 3, 3))
ref = {
    "unfold": F.unfold(minidl.tensor(x64), 3, padding=1, stride=2).numpy(),
    "fold": F.fold(F.unfold(minidl.tensor(x64), 3, padding=1), (size, size), 3, padding=1).numpy(),
    "conv2d": F.conv2d(minidl.tensor(x64), minidl.tensor(w64), stride=1, padding=1).numpy(),
}
m, n, k = (37, 70, 29) if args.quick else (70, 130, 37)
a64, b64 = rng.standard_normal((m, k)), rng.standard_normal((k, n))
devices = [d for d in ("cpu", "cuda-emu", "cuda") if available(d)[0]]
for d in ("cuda-emu", "cuda"):
    if d not in devices:
        print(f"{d}: skipped here ({available(d)[1]})")
for d in devices:
    xd, wd = minidl.tensor(x64.astype(np.float32), device=d), minidl.tensor(w64.astype(np.float32), device=d)
    got = {
        "unfold": F.unfold(xd, 3, padding=1, stride=2).numpy(),
        "fold": F.fold(F.unfold(xd, 3, padding=1), (size, size), 3, padding=1).numpy(),
        "conv2d": F.conv2d(xd, wd, stride=1, padding=1).numpy(),
    }
    for op, value in got.items():
        check(f"{op} on {d} (float32) == cpu float64", value, ref[op], atol=1e-4, rtol=1e-4)
    if d != "cpu":
        backend = get_backend(d)
        a, b = backend.xp.asarray(a64, dtype=np.float32), backend.xp.asarray(b64, dtype=np.float32)
        c = backend.xp.zeros((m, n), dtype=np.float32)
        backend.gemm(Matrix(c, m, n), Matrix(a, m, k), Matrix(b, k, n))
        c = c.get() if d == "cuda" else c
        check(f"one sgemm launch on {d}, {m}x{k} · {k}x{n} (partial tiles) == A @ B",
              c, a64 @ b64, atol=1e-4, rtol=1e-4)
print("devices compared:", ", ".join(devices))

# %%
finish(args)
