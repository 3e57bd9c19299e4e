# %% [markdown]
# # Lesson 09 — Feature inversion: what does a layer keep?
#
# *Run time on a 2-core laptop CPU: about 1 minute (`--quick`: about 8 s).*
#
# Lesson 08 asked what *one* unit responds to.  Here we ask what a *whole layer*
# remembers of an image.  Mahendran & Vedaldi (2015) answer it by optimisation:
# start from faint noise and change the pixels until the layer's activations Φ(x)
# match the original's Φ₀:
#
#     min_x  ‖Φ(x) − Φ₀‖² / ‖Φ₀‖²  +  λ_α · ‖x‖_α^α  +  λ_β · TV(x)^(β/2)
#
# The first term is the *normalised feature error* (0 = the layer cannot tell x
# from the original).  Many images share the same deep features, so the two
# regularisers pick a *natural-looking* one: the α-norm (α = 6) keeps pixel values
# in range, the total variation (β = 2) prefers smooth images.  What survives in
# the reconstruction is what the layer kept.
#
# `minidl.inversion.optimize.invert` implements it (read `minidl/inversion/`).
# Exercise: `lessons/exercises/09_inversion_regularisers.py` asks you to write the
# regularisers: `tv_loss`, `tv_beta` and `alpha_norm` (`python -m minidl.grade 09`).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup, weights_path

import minidl
import minidl.functional as F
from minidl import metrics
from minidl.data import sample
from minidl.inversion import optimize
from minidl.models import vgg16

args = setup("09_feature_inversion", "feature inversion: reconstructions from each block, TV, SSIM",
             devices=("cpu", "cuda"))
MODEL = vgg16(weights=weights_path(args), device=args.device)
SIZE, ITERATIONS = (48, 12) if args.quick else (112, 80)
LAYERS = ("block1_conv2", "block3_conv3", "block5_conv3") if args.quick else (
    "block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")

# %% [markdown]
# ## 1. Total variation, in closed form
#
# minidl's `tv_loss` is the mean squared difference between vertical neighbours
# plus the same for horizontal neighbours.  Three images whose TV we know by hand:
#
# - a constant image: no differences, TV = 0;
# - a ramp x[i, j] = a·j: every horizontal difference is a, vertical ones are 0,
#   so TV = a²;
# - a ±1 checkerboard: every neighbour differs by ±2, so TV = 4 + 4 = 8.
#
# The checkerboard is the most "unnatural" image of all for this regulariser;
# it is also what a transposed convolution likes to paint (lesson 05), which is
# why inversion needs the TV term.

# %%
H = W = 16
a = 0.37
j = np.arange(W, dtype=np.float64)
ramp = np.broadcast_to(a * j, (1, 1, H, W)).copy()
board = np.where((np.arange(H)[:, None] + np.arange(W)[None, :]) % 2 == 0, 1.0, -1.0)[None, None]
check("TV(constant) == 0", F.tv_loss(minidl.tensor(np.full((1, 3, H, W), 5.0))), 0.0, atol=0)
check(f"TV(ramp of slope {a}) == a² = {a * a:.4f}", F.tv_loss(minidl.tensor(ramp)), a * a,
      atol=1e-12)
check("TV(±1 checkerboard) == 8", F.tv_loss(minidl.tensor(board)), 8.0, atol=1e-12)

# %% [markdown]
# ## 2. Reconstructions from each block
#
# We invert the last convolution of blocks 1–5 for the same photo, starting from
# the same seeded noise, and measure each reconstruction against the original:
# the normalised feature error the optimiser reached (how well it solved the
# problem) and the SSIM of the *pixels* (how much of the image the layer kept;
# 1 = identical).

# %%
photo = sample("grace_hopper", max_side=SIZE)
results, rows = {}, []
for layer in LAYERS:
    start = time.perf_counter()
    image, log = optimize.invert(photo, layer, size=SIZE, iterations=ITERATIONS, seed=0,
                                 device=args.device, model=MODEL, progress=False)
    seconds = time.perf_counter() - start
    ssim = float(metrics.ssim(image, photo))
    results[layer] = image
    rows.append((layer, log["final"]["feature_error"], ssim, float(metrics.psnr(image, photo)),
                 seconds))

print(f"\n{'layer':<14}{'feature error':>15}{'SSIM':>8}{'PSNR dB':>9}{'seconds':>9}")
for layer, err, ssim, psnr, seconds in rows:
    print(f"{layer:<14}{err:>15.3f}{ssim:>8.3f}{psnr:>9.1f}{seconds:>9.1f}")

# %% [markdown]
# The table's message: shallow layers keep nearly everything (their receptive
# fields are small and there are many of them per pixel), deep layers keep the
# gist — the layout and the parts — and throw away the exact colours and edges,
# so their reconstructions are less similar to the photo.

# %%
ssims = [r[2] for r in rows]
check(f"SSIM falls from the shallowest to the deepest layer ({ssims[0]:.2f} > {ssims[-1]:.2f})",
      ssims[0] > ssims[-1])
check("block1 reconstructs better than every deeper layer (SSIM)", ssims[0] == max(ssims))
check("the optimiser matched block1's features closely (normalised error < 0.1)",
      rows[0][1] < 0.1)

fig, axes = plt.subplots(1, len(LAYERS) + 1, figsize=(2.6 * (len(LAYERS) + 1), 3.4))
axes[0].imshow(photo)
axes[0].set_title("original", fontsize=9)
for ax, (layer, err, ssim, _, _) in zip(axes[1:], rows):
    ax.imshow(results[layer])
    ax.set_title(f"{layer}\nerror {err:.2f}, SSIM {ssim:.2f}", fontsize=8)
for ax in axes:
    ax.axis("off")
fig.suptitle("what each block keeps: images optimised to have the photo's activations")
savefig(fig, args, "reconstructions.png")

# %% [markdown]
# ## What we learned
# - Inversion by optimisation shows what a layer keeps: the pixels whose
#   activations match.
# - Total variation is the regulariser that keeps them natural; its values on
#   simple images follow from its definition.
# - Going deeper, the features keep *what* and *roughly where*, and lose the
#   exact appearance; SSIM falls with depth.
#
# Lesson 10 learns a network that does this inversion in one forward pass.

# %%
finish(args)
