# %% [markdown]
# # Lesson 05 — Upsampling and checkerboard artifacts
#
# Run time (2-core laptop CPU, measured, Python start-up included): about 5 s by default,
# 3 s with `--quick`.
#
# Decoders and GAN generators upsample with transposed convolutions, and their images
# often carry a faint checkerboard.  Odena, Dumoulin & Olah ("Deconvolution and
# Checkerboard Artifacts", Distill 2016) traced it to *uneven overlap*: with stride s
# and a kernel size k not divisible by s, some output pixels receive more painted
# kernel copies (lesson 03, view 2) than their neighbours.  This lesson
#
# 1. shows a transposed conv that *is* bilinear upsampling (k4 s2 p1),
# 2. counts the overlap for k3 s2, k4 s2 and k5 s2 and finds the checkerboard in
#    the Fourier spectrum, at the highest frequency a pixel grid can hold (Nyquist),
# 3. shows the cure Distill recommends: resize first, then an ordinary convolution.
#
# Prerequisites: lesson 03.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup

import minidl
import minidl.functional as F
from minidl.data import sample

args = setup("05_upsampling_checkerboards", "Lesson 05: upsampling and checkerboard artifacts")
f64 = np.float64
rng = np.random.default_rng(5)
side = 48 if args.quick else 160
photo = sample("grace_hopper", max_side=2 * side)[:side, side // 2:side // 2 + side]
x = minidl.tensor(photo.transpose(2, 0, 1)[None] / 255.0, dtype=f64)   # (1, 3, side, side)

# %% [markdown]
# ## 1. Bilinear upsampling is a transposed convolution
#
# Doubling an image bilinearly (pixel centres at half-pixel positions, PyTorch's
# `align_corners=False`) gives each new pixel the weights 3/4 and 1/4 of its two
# nearest old pixels along each axis.  The transposed conv with stride 2, padding 1
# and the 4×4 kernel outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16 paints exactly those
# weights; a diagonal weight (C_in = C_out, zero between channels) keeps the colours
# apart.  This is how FCN initialised its upsampling layers.

# %%
taps = np.array([1.0, 3.0, 3.0, 1.0]) / 4
bilinear = np.zeros((3, 3, 4, 4))
for c in range(3):
    bilinear[c, c] = np.outer(taps, taps)
up = F.conv_transpose2d(x, minidl.tensor(bilinear, dtype=f64), stride=2, padding=1)
reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
check(f"k4 s2 p1 bilinear transposed conv: {x.shape[2:]} -> {up.shape[2:]}", up.shape == reference.shape)
check("inside a 1-pixel border it equals half-pixel bilinear interpolation",
      up[:, :, 1:-1, 1:-1], reference[:, :, 1:-1, 1:-1], atol=1e-12)
border = np.abs(up.numpy() - reference.numpy()).max()
print(f"on the border they differ by up to {border:.3f}: the transpose sees zeros outside, "
      "interpolate repeats the edge pixel")

fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
crop = slice(side // 2, side // 2 + side // 4)
big = slice(side, side + side // 2)
for ax, img, title in ((axes[0], x.numpy()[0, :, crop, crop], "input crop"),
                       (axes[1], up.numpy()[0, :, big, big], "conv_transpose2d, bilinear k4 s2 p1"),
                       (axes[2], reference.numpy()[0, :, big, big], "F.interpolate(bilinear)")):
    ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
savefig(fig, args, "bilinear_transposed_conv.png")

# %% [markdown]
# ## 2. Overlap: who gets painted how often
#
# Put ones in, ones as the kernel: `conv_transpose2d(ones, ones)` counts, per output
# pixel, how many kernel copies land on it.  In 1-D with k3 s2 the counts alternate
# 1, 2, 1, 2 …; in 2-D they multiply: 1, 2 and 4.  A layer whose weights are all
# equal would print that pattern onto a flat grey input — the checkerboard.  With k4
# s2 every pixel gets 2 × 2 = 4 copies; with k5 s2 the counts are 4, 6 and 9.

# %%
n = 16
ones = minidl.ones((1, 1, n, n), dtype=f64)
overlap = {}
for k in (3, 4, 5):
    o = F.conv_transpose2d(ones, minidl.ones((1, 1, k, k), dtype=f64), stride=2).numpy()[0, 0]
    overlap[k] = o[k:-k, k:-k]                       # the interior, away from the edges
    print(f"k{k} s2: interior overlap counts {sorted({int(v) for v in overlap[k].ravel()})}")
check("k3 s2: interior max/min overlap = 4 (counts 1, 2, 4)", overlap[3].max() / overlap[3].min(), 4.0)
check("k4 s2: interior max/min overlap = 1 (every pixel 4 copies)", overlap[4].max() / overlap[4].min(), 1.0)
check("k5 s2: interior max/min overlap = 9/4", overlap[5].max() / overlap[5].min(), 9 / 4)

fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, k in zip(axes, (3, 4, 5)):
    im = ax.imshow(overlap[k][:10, :10], cmap="magma", vmin=0, vmax=9)
    ax.set_title(f"k{k} s2: overlap counts (max/min {overlap[k].max() / overlap[k].min():.2f})")
    for (a, b), v in np.ndenumerate(overlap[k][:10, :10]):
        ax.text(b, a, f"{v:.0f}", ha="center", va="center", color="w" if v < 5 else "k", fontsize=7)
    ax.axis("off")
savefig(fig, args, "overlap_maps.png")

# %% [markdown]
# ## 3. The checkerboard in the spectrum
#
# A pattern that repeats every 2 pixels is the fastest oscillation a pixel grid can
# carry: frequency 1/2 cycle per pixel, the *Nyquist* frequency.  In the 2-D FFT of a
# 2N × 2N crop it sits at index N along an axis.  For k3 s2 the overlap map's whole
# non-constant part lives there; for k4 s2 there is nothing but the constant (DC).

# %%
def spectrum(image):
    """|FFT| of an even-sized crop, shifted so that DC is in the centre."""
    return np.abs(np.fft.fftshift(np.fft.fft2(image)))


size = overlap[3].shape[0] // 2 * 2
spec3, spec4 = spectrum(overlap[3][:size, :size]), spectrum(overlap[4][:size, :size])
centre = size // 2
no_dc = spec3.copy()
no_dc[centre, centre] = 0
peak = np.unravel_index(np.argmax(no_dc), no_dc.shape)
print(f"k3 s2: strongest non-DC frequency at {tuple(int(p) - centre for p in peak)} bins from DC "
      f"(Nyquist = ±{centre})")
check("k3 s2: the strongest non-DC component is at the Nyquist frequency",
      abs(int(peak[0]) - centre) == centre or abs(int(peak[1]) - centre) == centre)
spec4_no_dc = spec4.copy()
spec4_no_dc[centre, centre] = 0
check("k4 s2: no energy outside DC", spec4_no_dc.max(), 0.0, atol=1e-9)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, spec, title in ((axes[0], spec3, "k3 s2"), (axes[1], spec4, "k4 s2")):
    ax.imshow(np.log1p(spec), cmap="viridis", extent=(-0.5, 0.5, 0.5, -0.5))
    ax.set_title(f"{title}: log |FFT| of the overlap map")
    ax.set_xlabel("cycles / pixel")
axes[0].annotate("Nyquist", xy=(-0.5, 0), xytext=(-0.3, 0.3), color="w",
                 arrowprops={"arrowstyle": "->", "color": "w"})
savefig(fig, args, "overlap_fft.png")

# %% [markdown]
# ## 4. Learned weights and the cure: resize, then convolve
#
# Real layers have random, then learned, weights — not ones.  Feed a *constant* image
# through a k3 s2 transposed conv with random weights: the output is periodic with
# period 2, a checkerboard, because the four phases of the output grid sum different
# subsets of the kernel.  Distill's fix: upsample by nearest-neighbour (or bilinear)
# interpolation, which keeps a constant image constant, then apply an ordinary
# convolution, whose every output pixel uses *all* k² taps — so a constant stays
# constant (inside the border) whatever the weights.

# %%
weights = rng.standard_normal((3, 3, 3, 3)) / 9
flat = minidl.ones((1, 3, side // 4, side // 4), dtype=f64) * 0.5
deconv = F.conv_transpose2d(flat, minidl.tensor(weights, dtype=f64), stride=2).numpy()[..., 3:-3, 3:-3]
resize = F.conv2d(F.interpolate(flat, scale_factor=2, mode="nearest"),
                  minidl.tensor(weights.transpose(1, 0, 2, 3), dtype=f64)).numpy()[..., 2:-2, 2:-2]
print(f"constant in, random k3 s2 transposed conv: output spread {np.ptp(deconv):.3f}")
check("a constant image stays constant (inside) under resize + conv",
      resize.max(axis=(2, 3)) - resize.min(axis=(2, 3)), np.zeros((1, 3)), atol=1e-12)
check("... but not under a random-weight k3 s2 transposed conv", np.ptp(deconv) > 1e-3)

photo_deconv = F.conv_transpose2d(x, minidl.tensor(weights, dtype=f64), stride=2, padding=1,
                                  output_padding=1)
photo_resize = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"),
                        minidl.tensor(weights.transpose(1, 0, 2, 3), dtype=f64), padding=1)


def show(ax, img, title):
    img = img[0].transpose(1, 2, 0)
    span = img.max() - img.min()
    img = (img - img.min()) / span if span > 1e-9 else np.full_like(img, 0.5)   # a constant: grey
    ax.imshow(img, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")


fig, axes = plt.subplots(1, 4, figsize=(15, 4))
show(axes[0], deconv[..., :12, :12], "constant -> k3 s2 transposed")
show(axes[1], resize[..., :12, :12], "constant -> resize + conv")
show(axes[2], photo_deconv.numpy()[..., big, big], "photo -> k3 s2 transposed (random w)")
show(axes[3], photo_resize.numpy()[..., big, big], "photo -> resize + conv (same w)")
savefig(fig, args, "resize_vs_transposed.png")

# %%
finish(args)
