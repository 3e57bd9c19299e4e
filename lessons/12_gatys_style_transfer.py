# %% [markdown]
# # Lesson 12 — Gatys style transfer
#
# *Run time on a 2-core laptop CPU: about 2½ minutes (`--quick`: about 20 s).*
#
# Lesson 11 turned noise into a texture by matching Gram matrices.  Gatys, Ecker
# & Bethge (2016) add a second term that keeps the *content* of a photo: the
# feature maps of one deep layer (here block4_conv2) must stay close to the
# photo's.  Deep features say *what is where* but not the exact pixels (lesson 09),
# so the optimiser is free to repaint the surface with the painting's strokes.
#
#     L(x) = w_c · mean((Φ_c(x) − Φ_c(p))²)                       content
#          + w_s · Σ_l mean((G_l(x) − G_l(s))²)                    style
#          + w_tv · TV(x)                                          smoothness
#
# `minidl.style.gatys.stylize` is that formula, L-BFGS and the neural-style
# options; read it top to bottom (`minidl/style/gatys.py`).  This lesson turns its
# knobs: the content/style balance, keeping the photo's colours, blending two
# paintings; and checks that a seeded run is reproducible bit for bit, that the
# style loss really falls, and that the devices agree.
#
# Exercise: `lessons/exercises/12_gatys_losses.py` asks you to write
# `content_loss` and `style_loss` (`python -m minidl.grade 12`).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _common import available, check, finish, savefig, setup, weights_path

from minidl.data import sample
from minidl.models import vgg16
from minidl.style import gatys
from minidl.style.colors import match_luminance

args = setup("12_gatys_style_transfer", "Gatys style transfer: weights, colours, blends, reproducibility",
             devices=("cpu", "cuda"))
MODEL = vgg16(weights=weights_path(args), device=args.device)  # built once, passed to every run
SIZE, ITERATIONS = (32, 15) if args.quick else (128, 60)
GRID_SIZE, GRID_ITERATIONS = (32, 4) if args.quick else (64, 20)
content, style, style2 = "grace_hopper", "starry_night", "the_scream"


def run(**options):
    """stylize with this lesson's device and model and no progress bar."""
    settings = {"device": args.device, "weights": MODEL, "progress": False}
    settings.update(options)
    image, log = gatys.stylize(settings.pop("content", content), settings.pop("styles", [style]),
                               **settings)
    print(f"  stylize {settings.get('size')} px, {settings.get('iterations')} iterations on "
          f"{settings['device']}: {log['seconds']:.1f} s")
    return image, log


# %% [markdown]
# ## 1. One stylisation, and what the loss does
#
# Started from the photo (`init="content"`), the content loss starts at 0 and the
# style loss is large; the optimiser trades a little content for a lot of style.

# %%
start = time.perf_counter()
image, log = run(size=SIZE, iterations=ITERATIONS)
print(f"{SIZE} px, {ITERATIONS} iterations: {time.perf_counter() - start:.1f} s")
first, final = log["iterations"][0], log["final"]
print(f"style loss {first['style']:.4g} -> {final['style']:.4g}; "
      f"content loss {first['content']:.4g} -> {final['content']:.4g}")
check("the style loss falls at least 10x", first["style"] / final["style"] >= 10)
check("the total loss falls", final["loss"] < first["loss"])

# %% [markdown]
# ## 2. The content/style balance
#
# The balance is set by the ratio w_s / w_c.  A small ratio gives the photo with
# a tint; as it grows, the painting's texture takes over and the photo's detail
# fades.  (The raw style loss of a photo is around 10⁸ and its content loss 0, so
# "small" here means w_s well below 1.)  Each run starts from the photo; smaller
# and shorter than above, to keep the lesson quick.

# %%
style_weights = (0.01, 100.0) if args.quick else (0.01, 1.0, 100.0)
content_weights = (5.0,) if args.quick else (5.0, 25.0)
grid = {}
fig, axes = plt.subplots(len(content_weights), len(style_weights),
                         figsize=(3 * len(style_weights), 3.2 * len(content_weights)))
for row, cw in zip(np.atleast_2d(axes), content_weights):
    for ax, sw in zip(row, style_weights):
        grid[cw, sw], lg = run(size=GRID_SIZE, iterations=GRID_ITERATIONS, content_weight=cw,
                               style_weight=sw)
        ax.imshow(grid[cw, sw])
        ax.set_title(f"content {cw:g}, style {sw:g}\nstyle loss {lg['final']['style']:.3g}",
                     fontsize=8)
        ax.axis("off")
savefig(fig, args, "weight_grid.png")
small = grid[5.0, 100.0]  # the default weights, at the grid's size

# %% [markdown]
# ## 3. Keeping the photo's colours
#
# `original_colors=True` (neural-style's `-original_colors 1`) keeps only the
# *luminance* of the result and takes the colour (the U and V channels of YUV)
# from the photo: the brush strokes of Van Gogh in Grace Hopper's own colours.
# It is a post-processing step, so it equals `match_luminance(result, content)`
# — checked on a small run, then applied to the big one.

# %%
kept_small, _ = run(size=GRID_SIZE, iterations=GRID_ITERATIONS, original_colors=True)
check("original_colors=True == match_luminance(stylised, content)",
      kept_small, match_luminance(small, sample(content, max_side=GRID_SIZE)), atol=0)
photo = sample(content, max_side=SIZE)
kept = match_luminance(image, photo)


def chroma(rgb):
    """U and V of YUV (the colour without the brightness), as floats."""
    r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([0.492 * (b - y), 0.877 * (r - y)])


err_kept = np.abs(chroma(kept) - chroma(photo)).mean()
err_plain = np.abs(chroma(image) - chroma(photo)).mean()
print(f"mean |UV − UV(photo)|: plain {err_plain:.1f}, original colours {err_kept:.1f}")
check("with original colours, the chrominance is much closer to the photo's",
      err_kept < 0.5 * err_plain)

fig, axes = plt.subplots(1, 5, figsize=(16, 3.6))
for ax, (title, im) in zip(axes, [("content", photo), ("style", sample(style, max_side=SIZE)),
                                  ("stylised", image), ("original colours", kept)]):
    ax.imshow(im)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
rows = log["iterations"]
for part in ("loss", "content", "style", "tv"):
    values = [r[part] if r[part] > 0 else np.nan for r in rows]  # the content loss starts at 0
    axes[-1].semilogy([r["i"] for r in rows], values, label=part)
axes[-1].legend(fontsize=8)
axes[-1].set_xlabel("iteration")
savefig(fig, args, "stylized.png")

# %% [markdown]
# ## 4. Blending two paintings
#
# With several style images, each Gram target is weighted: the style loss is
# Σ_k b_k Σ_l mean((G_l(x) − G_l(s_k))²), with the blend weights b summing to 1.
# Blend weights (1, 0) must give exactly the single-style result.

# %%
blends = [(1.0, 0.0), (0.5, 0.5)] if args.quick else [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
results = [run(size=GRID_SIZE, iterations=GRID_ITERATIONS, styles=[style, style2],
               style_blend_weights=list(b))[0] for b in blends]
check("blend weights (1, 0) == the first style alone", results[0], small, atol=0)
fig, axes = plt.subplots(1, len(blends), figsize=(3 * len(blends), 3.4))
for ax, b, im in zip(axes, blends, results):
    ax.imshow(im)
    ax.set_title(f"{b[0]:g} × Starry Night + {b[1]:g} × The Scream", fontsize=8)
    ax.axis("off")
savefig(fig, args, "style_blend.png")

# %% [markdown]
# ## 5. Reproducibility and devices
#
# From random noise (`init="random"`), the seed decides the start.  The same seed
# on the same device gives the same image *bit for bit* — every operation in minidl
# is deterministic.  (As in neural-style, the "noise" is tiny — standard deviation
# 0.001 on the 0–255 scale — so the start is practically the mean grey, and
# different seeds give nearly the same picture.)  Across devices the order of floating-point sums differs, so
# the images differ in the last bits, but the losses agree to float32 precision
# for the first iterations (chaotic optimisation amplifies tiny differences
# later).  We compare cpu with the CUDA kernels emulated on the CPU (and on a real
# GPU when there is one), on a small image and the shallow layers to keep it quick.

# %%
a, log_a = run(size=GRID_SIZE, iterations=GRID_ITERATIONS, init="random", seed=3)
b, log_b = run(size=GRID_SIZE, iterations=GRID_ITERATIONS, init="random", seed=3)
check("the same seed gives a bit-identical image", np.array_equal(a, b))
check("... and identical losses at every step",
      [r["loss"] for r in log_a["iterations"]] == [r["loss"] for r in log_b["iterations"]])

# The emulator runs every CUDA thread as a CPU thread: slow, so a 16 px image and block1 only.
small = {"size": 16, "iterations": 3, "init": "content", "content_layers": ("block1_conv2",),
         "style_layers": ("block1_conv1",)}
cpu_model = MODEL if args.device == "cpu" else vgg16(weights=weights_path(args))
reference = [r["loss"] for r in run(device="cpu", weights=cpu_model, **small)[1]["iterations"]]
# With --quick (the tests) the emulator is left out: compiling its kernels takes longer
# than the whole quick run, and lesson 04 already compares the devices op by op.
for device in ("cuda",) if args.quick else ("cuda-emu", "cuda"):
    ok, why = available(device)
    if not ok:
        print(f"({device} not available here: {why.split(';')[0]})")
        continue
    model = vgg16(weights=weights_path(args), device=device)
    losses = [r["loss"] for r in run(device=device, weights=model, **small)[1]["iterations"]]
    check(f"loss at each of the first {len(losses)} steps: {device} == cpu (rtol 1e-3)",
          losses, reference, rtol=1e-3, atol=0)

# %% [markdown]
# ## What we learned
# - Style transfer is texture synthesis (lesson 11) plus a content term at one
#   deep layer; the ratio of the weights sets the balance.
# - Keeping the photo's colours is a luminance transfer after the optimisation.
# - Several styles blend by weighting their Gram targets.
# - Seeded runs are reproducible; devices agree in the loss.
#
# Lesson 13 gets a similar picture in one forward pass (AdaIN).

# %%
finish(args)
