# %% [markdown]
# # Lesson 11 — Gram matrices and texture
#
# *Run time on a 2-core laptop CPU: about 80 s (`--quick`: about 11 s).*
#
# A feature map F of C channels over H×W positions says *what* is *where*.  Its
# Gram matrix
#
#     G = F·Fᵀ / (C·H·W),    F reshaped to (C, H·W)
#
# keeps only *what goes with what*: G[i, j] is how strongly channels i and j fire
# together, averaged over all positions.  The positions are summed away, so G
# describes a *texture* — brush strokes, colours, repeated shapes — and not the
# layout of a scene.  Gatys, Ecker & Bethge (2015) showed that an image whose
# Grams at several VGG16 layers match a painting's *is* a new sample of that
# painting's texture.  This lesson checks the algebra of G, looks at Grams, and
# synthesises a texture from noise.
#
# Exercise: `lessons/exercises/11_gram.py` asks you to write `gram_matrix` and
# `gram_loss` yourself (`python -m minidl.grade 11`).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup, weights_path

import minidl
import minidl.functional as F
from minidl import optim
from minidl.data import sample
from minidl.models import vgg16
from minidl.models.vgg16 import deprocess, preprocess

args = setup("11_gram_matrices_texture", "Gram matrices and texture synthesis", devices=("cpu", "cuda"))
SIZE = 40 if args.quick else 96
ITERATIONS = 40 if args.quick else 120
LAYERS = [f"block{b}_conv1" for b in range(1, 6)]
model = vgg16(weights=weights_path(args), device=args.device)

# %% [markdown]
# ## 1. The algebra of G, checked
#
# We take block2_conv1's features of *The Starry Night* (in float64, so that
# rounding does not blur the checks) and verify four facts:
#
# - **symmetric**: G[i, j] = F_i·F_j = G[j, i];
# - **positive semi-definite**: vᵀGv = ‖Fᵀv‖²/(CHW) ≥ 0 for every v, so no
#   eigenvalue is negative;
# - **trace** = Σ_i F_i·F_i/(CHW) = ΣF²/(CHW): the mean energy of the features;
# - **blind to position**: shuffling the H·W positions (the same shuffle in every
#   channel) reorders the terms of each dot product and changes nothing.

# %%
style = sample("starry_night", max_side=SIZE)
with minidl.no_grad():
    f = model.features(preprocess(style, args.device), "block2_conv1")["block2_conv1"]
f64 = minidl.tensor(f.numpy().astype(np.float64))
n, c, h, w = f64.shape
G = F.gram_matrix(f64).numpy()[0]
check("gram_matrix has shape (N, C, C)", G.shape == (c, c))
check("G == F·Fᵀ/(CHW) computed with matmul",
      G, (f64.numpy()[0].reshape(c, -1) @ f64.numpy()[0].reshape(c, -1).T) / (c * h * w), atol=1e-9)
check("G is symmetric", G, G.T, atol=0)
eigenvalues = np.linalg.eigvalsh(G)
check("G is positive semi-definite (smallest eigenvalue >= -1e-12·largest)",
      eigenvalues.min() >= -1e-12 * eigenvalues.max())
check("trace(G) == ΣF² / (CHW)", np.trace(G), (f64.numpy() ** 2).sum() / (c * h * w), rtol=1e-12)
perm = np.random.default_rng(0).permutation(h * w)
shuffled = f64.numpy().reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)
check("G is unchanged when the pixel positions are shuffled",
      F.gram_matrix(minidl.tensor(shuffled)).numpy()[0], G, atol=1e-9)

# %% [markdown]
# ## 2. Grams as fingerprints of a style
#
# Below, the top-left 32×32 corner of the Gram matrix at three layers, for two
# paintings.  And a number to go with the pictures: the Grams of the *left and
# right halves* of one painting are closer to each other than to the Gram of
# another painting, although the halves show different things.

# %%
def grams(image, layers=LAYERS):
    with minidl.no_grad():
        feats = model.features(preprocess(image, args.device), layers)
    return {k: F.gram_matrix(v).numpy()[0] for k, v in feats.items()}


scream = sample("the_scream", max_side=SIZE)
g_star, g_scream = grams(style), grams(scream)
half = style.shape[1] // 2
g_left, g_right = grams(style[:, :half]), grams(style[:, half:])


def distance(a, b, layer="block3_conv1"):
    return float(np.linalg.norm(a[layer] - b[layer]) / np.linalg.norm(b[layer]))


d_halves, d_paintings = distance(g_left, g_right), distance(g_left, g_scream)
print(f"block3_conv1 relative Gram distance: halves of Starry Night {d_halves:.2f}, "
      f"Starry Night (left) vs The Scream {d_paintings:.2f}")
check("two halves of one painting have closer Grams than two paintings", d_halves < d_paintings)

fig, axes = plt.subplots(2, 4, figsize=(12, 6))
for row, (title, image, g) in zip(axes, [("The Starry Night", style, g_star),
                                          ("The Scream", scream, g_scream)]):
    row[0].imshow(image)
    row[0].set_title(title, fontsize=9)
    row[0].axis("off")
    for ax, layer in zip(row[1:], ("block1_conv1", "block3_conv1", "block5_conv1")):
        ax.imshow(g[layer][:32, :32], cmap="viridis")
        ax.set_title(f"G at {layer} (32×32 corner)", fontsize=9)
        ax.axis("off")
savefig(fig, args, "gram_heatmaps.png")

# %% [markdown]
# ## 3. Texture synthesis: match the Grams, starting from noise
#
# The texture loss sums, over five layers, the squared difference between the
# Grams of the image x and of the painting s:
#
#     L(x) = Σ_l  mean( (G_l(x) − G_l(s))² ) / mean( G_l(s)² )
#
# (each layer divided by its own size so that all five count).  We minimise it
# over the *pixels* of x with L-BFGS, the optimiser Gatys used: the network is
# frozen, the image is the parameter.

# %%
layers = LAYERS[:2] if args.quick else LAYERS
targets = {k: minidl.tensor(v[None], device=args.device) for k, v in grams(style, layers).items()}
scales = {k: float((v.numpy() ** 2).mean()) for k, v in targets.items()}


def texture_loss(x):
    feats = model.features(x, layers)
    return sum(F.mse_loss(F.gram_matrix(feats[k]), targets[k]) / scales[k] for k in layers)


noise = np.random.default_rng(0).integers(0, 256, style.shape, dtype=np.uint8)
x = preprocess(noise, args.device)
x.requires_grad = True
optimizer = optim.LBFGS([x], lr=1.0, max_iter=10, history_size=100, line_search_fn="strong_wolfe")
losses = []


def closure():
    optimizer.zero_grad()
    loss = texture_loss(x)
    loss.backward()
    losses.append(loss.item())
    return loss


snapshots, start = {0: deprocess(x)}, time.perf_counter()
while optimizer.iterations < ITERATIONS:
    optimizer.step(closure)
    snapshots[optimizer.iterations] = deprocess(x)
    print(f"  iteration {optimizer.iterations:4d}  texture loss {losses[-1]:.4g}")
    if len(losses) > 5 * ITERATIONS:  # a line search gone wrong; stop rather than loop
        break
seconds = time.perf_counter() - start
print(f"{optimizer.iterations} L-BFGS iterations, {optimizer.function_evaluations} "
      f"forward+backward passes, {seconds:.1f} s")
fall = losses[0] / min(losses)
print(f"texture loss {losses[0]:.4g} -> {min(losses):.4g} ({fall:.0f}x lower)")
check("the texture loss falls at least 100x", fall >= 100)

# %% [markdown]
# The pictures: noise, a few stages, the result, and the painting.  Swirls and
# the painting's blues and yellows appear within ten iterations; fine speckle
# from the noise stays longest, because nothing in this loss asks for smooth
# pixels (lesson 12 adds a total-variation term for that).
#
# Something to look for: at this small size the texture often *keeps the
# painting's layout* (a dark tree on the left, a moon top right).  The Gram
# forgets positions, but block4 and block5 see 60–132 px, more than the whole
# 96 px image, and the zero padding at the borders tells them where the edges
# are — so position leaks back in.  Try it at 256 px (edit SIZE; a few minutes)
# and see how much of the layout is left.

# %%
shown = sorted(snapshots)
shown = [shown[0], *shown[1:-1][:: max(1, (len(shown) - 2) // 3)][:3], shown[-1]]
fig, axes = plt.subplots(1, len(shown) + 2, figsize=(3 * (len(shown) + 2), 3.4))
for ax, k in zip(axes, shown):
    ax.imshow(snapshots[k])
    ax.set_title(f"iteration {k}", fontsize=9)
    ax.axis("off")
axes[-2].imshow(style)
axes[-2].set_title("the painting", fontsize=9)
axes[-2].axis("off")
axes[-1].semilogy(losses)
axes[-1].set_xlabel("forward+backward pass")
axes[-1].set_title("texture loss", fontsize=9)
savefig(fig, args, "texture_synthesis.png")

# %% [markdown]
# ## What we learned
# - G = F·Fᵀ/(CHW) is symmetric, positive semi-definite, its trace is the mean
#   feature energy, and it forgets where things are.
# - Matching Grams at several layers turns noise into a texture of the painting:
#   that is the *style* half of style transfer (lesson 12 adds the *content*).

# %%
finish(args)
