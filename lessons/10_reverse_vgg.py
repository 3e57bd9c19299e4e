# %% [markdown]
# # Lesson 10 — The reverse VGG: learning to invert a layer
#
# *Run time on a 2-core laptop CPU: about 2¾ minutes (`--quick`: about 20 s).*
#
# Lesson 09 inverted a layer by *optimisation*: hundreds of forward and backward
# passes for each image.  A *decoder* learns the inversion once, from many
# images, and then inverts any image in one forward pass.  minidl's decoder
# mirrors VGG16 from a layer back to the pixels: each convolution read backwards,
# each 2×2 pooling replaced by a 2× upsampling (`minidl/models/decoder.py`).
#
# Lesson 05 showed two ways to upsample, and here they meet a real network:
#
# - `"transpose"`: a stride-2 transposed convolution (3×3), whose uneven overlap
#   paints a checkerboard;
# - `"resize"`: nearest-neighbour upsampling, then a reflection-padded 3×3
#   convolution — every output pixel is computed the same way.
#
# We train both for a couple of minutes on the CPU (`minidl.training.Trainer`,
# the engine of `minidl train-decoder`), compare them with lesson 09's
# optimisation on held-out photos (SSIM, PSNR, seconds), and then load the
# decoder minidl ships, trained for longer.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup, weights_path

import minidl
from minidl import metrics
from minidl.inversion import optimize
from minidl.models import vgg16
from minidl.models.decoder import fit_to_layer, load_decoder, reconstruct
from minidl.training import Settings, Trainer, held_out_images, random_crops

args = setup("10_reverse_vgg", "train a decoder (transpose vs resize), compare with inversion",
             devices=("cpu", "cuda"))
LAYER = "block3_conv1"
STEPS, CROP, BATCH = (6, 32, 2) if args.quick else (40, 64, 4)
EVAL_SIZE, INVERT_ITERATIONS = (48, 6) if args.quick else (128, 100)
vgg = vgg16(weights=weights_path(args), device=args.device)

# %% [markdown]
# ## 1. Train two small decoders
#
# Each step: random crops of the bundled training photos → VGG16 → block3_conv1
# features → decoder → image; the loss is the pixel error plus a little
# *feature* error (the decoded image should have the same features again), which
# rewards sharp edges (`minidl/training.py` explains both terms).  Adam, the same
# seed, the same crops for both architectures.  The loss of one batch jumps
# around with the random crops, so we judge progress on a fixed batch.

# %%
trainers, seconds = {}, {}
for arch in ("transpose", "resize"):
    settings = Settings(layer=LAYER, arch=arch, size=CROP, batch=BATCH, steps=STEPS, seed=0)
    trainer = Trainer(settings, vgg)
    probe = random_crops(trainer.images, np.random.default_rng(1), CROP, 4)  # a fixed batch
    with minidl.no_grad():
        before = trainer.losses(probe)["loss"].item()
    start = time.perf_counter()
    for step in range(STEPS):
        row = trainer.step()
        if (step + 1) % max(1, STEPS // 5) == 0:
            print(f"  {arch:<9} step {row['step']:4d}  loss {row['loss']:.4f}")
    seconds[arch] = time.perf_counter() - start
    trainers[arch] = trainer
    with minidl.no_grad():
        after = trainer.losses(probe)["loss"].item()
    print(f"{arch}: {STEPS} steps in {seconds[arch]:.1f} s")
    check(f"{arch} decoder: the training loss falls (on a fixed batch: {before:.4f} -> "
          f"{after:.4f})", after < before)

fig, ax = plt.subplots(figsize=(6, 3.5))
for arch, trainer in trainers.items():
    ax.plot([r["loss"] for r in trainer.state.history], label=arch)
ax.set_xlabel("step")
ax.set_ylabel("loss")
ax.set_yscale("log")
ax.legend()
ax.set_title(f"training a {LAYER} decoder for {STEPS} steps")
savefig(fig, args, "training_curves.png")

# %% [markdown]
# ## 2. A constant input: where the checkerboard comes from
#
# Feed each decoder a *constant* feature map.  The resize decoder computes every
# pixel the same way, so (reflection padding keeps even the borders the same) it
# returns a constant image.  The transpose decoder gives even and odd pixels
# different numbers of kernel taps (lesson 05), so it returns a pattern that
# repeats every 2, 4, 8 pixels — the checkerboard you can see, faintly, in its
# reconstructions below.

# %%
flat = minidl.ones((1, 256, 8, 8), device=args.device)
with minidl.no_grad():
    responses = {arch: t.decoder(flat).numpy()[0] for arch, t in trainers.items()}
# max − min within each colour channel, away from the borders; the largest of the three
spread = {arch: float(np.ptp(r[:, 4:-4, 4:-4], axis=(1, 2)).max()) for arch, r in responses.items()}
print("max − min of the decoded constant, per channel (interior): "
      + ", ".join(f"{arch} {v:.3g}" for arch, v in spread.items()))
check("resize decoder: a constant feature map decodes to a constant image (up to rounding)",
      spread["resize"] < 1e-3 * max(1.0, float(np.abs(responses["resize"]).max())))
check("transpose decoder: it decodes to a pattern (checkerboard), not a constant",
      spread["transpose"] > 100 * max(spread["resize"], 1e-6))
# The blue channel minus its mean, both on one grey scale (else imshow would
# stretch the resize decoder's 1e-7 rounding noise to full contrast).
deviations = {arch: r[0] - r[0].mean() for arch, r in responses.items()}
scale = max(float(np.abs(d).max()) for d in deviations.values())
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
for ax, (arch, d) in zip(axes, deviations.items()):
    ax.imshow(d, cmap="gray", vmin=-scale, vmax=scale)
    ax.set_title(f"{arch}: decoder(constant) − mean", fontsize=9)
    ax.axis("off")
savefig(fig, args, "constant_input.png")

# %% [markdown]
# ## 3. Held-out photos: decoders against optimisation
#
# Four Kodak photos were never used for training.  We decode each with both
# few-minute decoders and with the shipped one (the same architecture as our
# resize decoder, trained for longer), and invert the first also by lesson 09's
# optimisation at the same layer.  SSIM and PSNR against the original; seconds
# per image.

# %%
photos = held_out_images(size=EVAL_SIZE)
if args.quick:
    photos = dict(list(photos.items())[:2])
shipped = load_decoder(LAYER, device=args.device)
trained = shipped.training_settings
print(f"shipped decoder: {shipped.layer}, {shipped.arch}, {trained.get('steps_done')} steps of "
      f"{trained.get('batch')} crops of {trained.get('size')} px "
      f"({trained.get('seconds', 0) / 60:.0f} min on a CPU)")
decoders = {"transpose (ours)": trainers["transpose"].decoder,
            "resize (ours)": trainers["resize"].decoder, "resize (shipped)": shipped}
scores = {name: [] for name in decoders}
timing = {}
outputs = {}
for name, decoder in decoders.items():
    start = time.perf_counter()
    for key, image in photos.items():
        decoded = reconstruct(vgg, decoder, image)
        original = fit_to_layer(image, decoder.pools)
        scores[name].append((metrics.ssim(decoded, original), metrics.psnr(decoded, original)))
        outputs[name, key] = decoded
    timing[name] = (time.perf_counter() - start) / len(photos)

first_key = next(iter(photos))
original = fit_to_layer(photos[first_key], shipped.pools)
start = time.perf_counter()
inverted, _ = optimize.invert(original, LAYER, size=max(original.shape[:2]),
                              iterations=INVERT_ITERATIONS, device=args.device, model=vgg,
                              progress=False)
timing["optimisation (lesson 09)"] = time.perf_counter() - start
outputs["optimisation (lesson 09)", first_key] = inverted
opt_score = (metrics.ssim(inverted, original), metrics.psnr(inverted, original))

print(f"\n{'method':<26}{'SSIM':>7}{'PSNR dB':>9}{'s/image':>9}   ({first_key}; mean over "
      f"{len(photos)} photos)")
for name, s in scores.items():
    mean_ssim, mean_psnr = np.mean([v[0] for v in s]), np.mean([v[1] for v in s])
    print(f"{name:<26}{s[0][0]:>7.3f}{s[0][1]:>9.1f}{timing[name]:>9.2f}   "
          f"(mean SSIM {mean_ssim:.3f}, PSNR {mean_psnr:.1f})")
name = "optimisation (lesson 09)"
print(f"{name:<26}{opt_score[0]:>7.3f}{opt_score[1]:>9.1f}{timing[name]:>9.2f}")

mean_ssim = {name: float(np.mean([v[0] for v in s])) for name, s in scores.items()}
check(f"the shipped decoder beats the few-minute one on held-out photos (mean SSIM "
      f"{mean_ssim['resize (shipped)']:.3f} > {mean_ssim['resize (ours)']:.3f})",
      mean_ssim["resize (shipped)"] > mean_ssim["resize (ours)"])
check("a decoder is faster than optimisation (one pass against many)",
      timing["resize (shipped)"] < timing["optimisation (lesson 09)"])
if not args.quick:  # a 48 px, 6-iteration optimisation (--quick) is too short to compare
    check(f"... but optimisation, given {INVERT_ITERATIONS} iterations, reconstructs better "
          f"(SSIM {opt_score[0]:.3f} > {scores['resize (shipped)'][0][0]:.3f})",
          opt_score[0] > scores["resize (shipped)"][0][0])

columns = [*decoders, "optimisation (lesson 09)"]
fig, axes = plt.subplots(len(photos), len(columns) + 1, figsize=(2.6 * (len(columns) + 1),
                                                                  2.3 * len(photos)))
for row, key in zip(np.atleast_2d(axes), photos):
    row[0].imshow(fit_to_layer(photos[key], shipped.pools))
    row[0].set_title(f"{key} (held out)" if key == first_key else key, fontsize=8)
    for ax, name in zip(row[1:], columns):
        if (name, key) in outputs:
            ax.imshow(outputs[name, key])
            ax.set_title(name if key == first_key else "", fontsize=8)
    for ax in row:
        ax.axis("off")
fig.suptitle(f"inverting {LAYER}: decoders (one pass) and optimisation")
savefig(fig, args, "held_out.png")

# %% [markdown]
# ## What we learned
# - A decoder is a learned inverse: train once, then invert in one pass.
# - Transposed-convolution upsampling leaves a checkerboard (a constant input
#   shows it); resize + convolution does not.
# - A few minutes of CPU training already reconstructs held-out photos, blurred;
#   the longer-trained shipped decoder does much better.  Optimisation is still
#   the most faithful, at about a hundred times the cost per image.  Lesson 13
#   uses a decoder for style transfer in one pass.

# %%
finish(args)
