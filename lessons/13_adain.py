# %% [markdown]
# # Lesson 13 — AdaIN: style transfer in one pass
#
# *Run time on a 2-core laptop CPU: about 55 s (`--quick`: about 6 s).*
#
# Gatys' method (lesson 12) optimises each picture for hundreds of iterations.
# Huang & Belongie (2017) observed that much of a style lives in simple
# statistics of the feature maps — each channel's **mean** (how much of a
# texture there is) and **standard deviation** (how strongly it varies) — while
# the content lives in *where* the activations are.  Adaptive instance
# normalisation swaps the statistics and keeps the layout:
#
#     AdaIN(f_c, f_s) = σ(f_s) · (f_c − μ(f_c)) / σ(f_c) + μ(f_s)      per channel
#
# Encode both images with VGG16 up to block4_conv1, apply AdaIN, and decode
# with a trained decoder (lesson 10): one forward pass.  `alpha` mixes back the
# content features, `t = α·AdaIN(f_c, f_s) + (1 − α)·f_c`, and several styles
# mix their AdaIN targets.  `minidl.style.adain` is the whole algorithm in a
# page; read it.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup, weights_path

import minidl.functional as F
from minidl.autograd import no_grad
from minidl.data import sample
from minidl.models import vgg16
from minidl.models.decoder import fit_to_layer, load_decoder, reconstruct
from minidl.models.vgg16 import preprocess
from minidl.style import adain, gatys

args = setup("13_adain", "AdaIN: statistics, alpha, style interpolation, speed vs Gatys",
             devices=("cpu", "cuda"))
SIZE = 64 if args.quick else 256
GATYS_ITERATIONS = 2 if args.quick else 5
LAYER = "block4_conv1"
vgg = vgg16(weights=weights_path(args), device=args.device)
decoder = load_decoder(LAYER, device=args.device)  # the decoder minidl ships for AdaIN
content = fit_to_layer(sample("grace_hopper", max_side=SIZE), decoder.pools)
style, style2 = sample("starry_night", max_side=SIZE), sample("the_scream", max_side=SIZE)


def run(**options):
    """adain.stylize with this lesson's images, encoder, decoder and size."""
    settings = {"size": SIZE, "decoder": decoder, "weights": vgg, "device": args.device}
    settings.update(options)
    return adain.stylize(settings.pop("content", content), settings.pop("styles", [style]),
                         **settings)


# %% [markdown]
# ## 1. What AdaIN does to the statistics
#
# After AdaIN, every channel of the content's features has exactly the mean and
# standard deviation of the same channel in the style's features (up to the
# small ε that keeps the division safe), while the *pattern* within each channel
# is still the content's: it is the content's map, shifted and scaled.  The one
# exception: a channel that is zero everywhere in the content (after the ReLU)
# has no pattern to scale, so it only takes the style's mean.

# %%
with no_grad():
    f_c = vgg.features(preprocess(content, args.device), LAYER)[LAYER]
    f_s = vgg.features(preprocess(style, args.device), LAYER)[LAYER]
    t = F.adain(f_c, f_s)
fc, fs, ft = (a.numpy()[0].reshape(a.shape[1], -1).astype(np.float64) for a in (f_c, f_s, t))
check("AdaIN output: each channel's mean == the style's", ft.mean(1), fs.mean(1),
      atol=1e-3 * np.abs(fs).max())
alive = fc.std(1) > 1e-2  # channels that vary in the content (ReLU leaves some all zero)
print(f"{int((~alive).sum())} of {len(alive)} channels are flat in the content: AdaIN can "
      f"shift them to the style's mean but has no pattern to stretch to its std")
check("AdaIN output: each (non-flat) channel's std == the style's", ft.std(1)[alive],
      fs.std(1)[alive], atol=1e-3 * fs.std(1).max())
corr = [np.corrcoef(fc[k], ft[k])[0, 1] for k in np.nonzero(alive & (fs.std(1) > 1e-6))[0]]
check(f"... and each channel keeps the content's pattern (correlation {min(corr):.4f} >= 0.999)",
      min(corr) >= 0.999)

# %% [markdown]
# ## 2. The alpha sweep
#
# α = 0 is the decoder's plain reconstruction of the content (lesson 10), α = 1
# the full style.  In between, the statistics slide from the photo's to the
# painting's.

# %%
alphas = (0.0, 0.5, 1.0) if args.quick else (0.0, 0.25, 0.5, 0.75, 1.0)
sweep = {a: run(alpha=a)[0] for a in alphas}
check("alpha = 0 returns the decoder's reconstruction of the content (exactly)",
      sweep[0.0], reconstruct(vgg, decoder, content), atol=0)

fig, axes = plt.subplots(1, len(alphas) + 2, figsize=(2.8 * (len(alphas) + 2), 3.2))
for ax, (title, image) in zip(axes, [("content", content), ("style", style),
                                     *((f"alpha = {a:g}", sweep[a]) for a in alphas)]):
    ax.imshow(image)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
savefig(fig, args, "alpha_sweep.png")

# %% [markdown]
# Does the decoded image really carry the style's statistics?  Encode the result
# again and measure how far its channel means and stds at block4_conv1 are from
# the style's, next to the same distance for the content.  AdaIN's features
# match the style exactly (section 1); whether the *picture* does depends on
# the decoder.  The shipped one was trained only to *reconstruct* photos
# (lesson 10), so it has never had to produce the statistics of a painting, and
# it reproduces them only partly — look at the numbers and at the sweep.  Huang
# & Belongie train the decoder with a style loss for exactly this reason
# (`minidl train-decoder --style-images DIR` does that, starting from this one).

# %%
def stats_distance(image):
    with no_grad():
        f = vgg.features(preprocess(fit_to_layer(image, decoder.pools), args.device), LAYER)[LAYER]
    a = f.numpy()[0].reshape(f.shape[1], -1).astype(np.float64)
    return float(np.linalg.norm(a.mean(1) - fs.mean(1)) + np.linalg.norm(a.std(1) - fs.std(1)))


print(f"distance of {LAYER} channel statistics to the style's: content "
      f"{stats_distance(content):.0f}, AdaIN target 0 (by construction), decoded result "
      f"{stats_distance(sweep[1.0]):.0f}")

# %% [markdown]
# ## 3. Interpolating between two styles
#
# The AdaIN targets of two paintings, mixed with weights (w, 1 − w), give a
# continuous path from one style to the other.

# %%
weights = [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)] if args.quick else [
    (1.0, 0.0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.0, 1.0)]
mixes = [run(styles=[style, style2], style_blend_weights=list(w))[0] for w in weights]
check("blend weights (1, 0) == the first style alone", mixes[0], sweep[1.0], atol=0)
fig, axes = plt.subplots(1, len(weights), figsize=(2.8 * len(weights), 3.2))
for ax, w, image in zip(axes, weights, mixes):
    ax.imshow(image)
    ax.set_title(f"{w[0]:g} Starry Night + {w[1]:g} Scream", fontsize=8)
    ax.axis("off")
savefig(fig, args, "style_interpolation.png")

# %% [markdown]
# ## 4. Speed: one pass against an optimisation
#
# The same content, style and size through Gatys' method for a few iterations,
# to measure its cost per iteration.  A good Gatys picture needs a few hundred.

# %%
start = time.perf_counter()
_, log_adain = run(alpha=1.0)
adain_seconds = time.perf_counter() - start
_, log_gatys = gatys.stylize(content, style, size=SIZE, iterations=GATYS_ITERATIONS,
                             weights=vgg, device=args.device, progress=False)
per_iteration = log_gatys["seconds_per_iteration"]
print(f"{SIZE} px: AdaIN {adain_seconds:.2f} s in all; Gatys {per_iteration:.2f} s per "
      f"evaluation, so 300 iterations ≈ {300 * per_iteration:.0f} s")
check(f"AdaIN takes less time than {GATYS_ITERATIONS + 1} Gatys loss evaluations",
      adain_seconds < log_gatys["seconds"])

# %% [markdown]
# ## What we learned
# - AdaIN gives the content's feature maps the style's channel means and
#   standard deviations, and keeps their pattern.
# - A decoder turns those features into a picture in one pass: alpha trades
#   style for content, and styles interpolate by mixing targets.  How much style
#   reaches the picture depends on how the decoder was trained.
# - It costs about as much as a few Gatys iterations, where a Gatys picture
#   needs hundreds; compare the two by eye (and with `minidl compare`).

# %%
finish(args)
