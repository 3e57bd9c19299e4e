# %% [markdown]
# # Lesson 07 — VGG16 from an HDF5 file
#
# *Run time on a 2-core laptop CPU: about 10 s (`--quick`: about 5 s).*
#
# Every later lesson looks at images through the eyes of VGG16, a network trained
# on ImageNet in 2014.  Its "knowledge" is 14.7 million numbers in one HDF5 file.
# In this lesson we open that file with plain `h5py`, walk its groups, load it into
# minidl, and check that we read it right: the loaded kernels must be the file's
# arrays, transposed from Keras' (kh, kw, C_in, C_out) to minidl's
# (C_out, C_in, kh, kw).  Then we see what the network wants as input (BGR, 0–255,
# mean subtracted), how big a patch each layer sees, and what its feature maps
# look like.
#
# Without the real weights (`minidl weights fetch vgg16`, or `MINIDL_WEIGHTS`), the
# lesson writes a small file of random weights in the same Keras layout, so every
# step about the *file* still runs; the pictures are then of an untrained network.

# %%
import h5py
import matplotlib.pyplot as plt
import numpy as np
from _common import check, finish, savefig, setup

import minidl
from minidl.data import sample
from minidl.models import vgg16
from minidl.models.vgg16 import BLOCK_CHANNELS, LAYER_NAMES, MEAN_BGR, deprocess, preprocess
from minidl.weights import find_weights, read_weights

args = setup("07_vgg16_from_hdf5", "VGG16 from HDF5: the file, the transpose, preprocessing, feature maps")
SIZE = 64 if args.quick else 224

# %% [markdown]
# ## 1. Find the file (or write a stand-in)
#
# `find_weights()` looks at `MINIDL_WEIGHTS`, the project's `weights/` folder and
# the user cache.  The stand-in is written the way Keras 2 writes it: a root
# attribute `layer_names`, one group per layer with an attribute `weight_names`,
# and the kernel stored as (kh, kw, C_in, C_out).


# %%
def write_random_keras2_file(path, seed=0):
    """A VGG16-shaped Keras-2 weight file with random (He-scaled) kernels."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"input_1"] + [n.encode() for n in LAYER_NAMES])
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        c_in = 3
        for name in LAYER_NAMES:
            group = f.create_group(name)
            if name.endswith("_pool"):
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            block, conv = int(name[5]) - 1, int(name[-1]) - 1
            c_out = BLOCK_CHANNELS[block][conv]
            names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            std = np.sqrt(2.0 / (9 * c_in))
            group[names[0]] = rng.normal(0, std, (3, 3, c_in, c_out)).astype(np.float32)
            group[names[1]] = np.zeros(c_out, np.float32)
            c_in = c_out


try:
    path = find_weights()
    real = True
except FileNotFoundError:
    print("no VGG16 weights found (`minidl weights fetch vgg16`, or set MINIDL_WEIGHTS): "
          "using a stand-in file of random weights")
    path = args.out / "vgg16_random_keras2.h5"
    write_random_keras2_file(path)
    real = False
print(f"weight file: {path} ({path.stat().st_size / 1e6:.1f} MB)")

# %% [markdown]
# ## 2. Walk the file with h5py
#
# An HDF5 file is a little file system: *groups* (folders) hold *datasets*
# (arrays), and both carry *attributes* (small metadata).  `visititems` walks it.

# %%
with h5py.File(path, "r") as f:
    layer_names = [n.decode() for n in f.attrs["layer_names"]]
    print("root attribute layer_names:", layer_names)
    file_arrays = {}

    def show(name, obj):
        if isinstance(obj, h5py.Dataset):
            file_arrays[name] = obj[()]
            print(f"  {name:<34} {obj.shape!s:<18} {obj.dtype}")

    f.visititems(show)

kernels = {k: v for k, v in file_arrays.items() if v.ndim == 4}
n_params = sum(v.size for v in file_arrays.values())
print(f"{len(kernels)} kernels, {n_params:,} numbers")
check("13 convolution kernels, 5 poolings without weights",
      len(kernels) == 13 and sum(n.endswith("_pool") for n in layer_names) == 5)
check("VGG16 without its classifier has 14,714,688 parameters", n_params == 14_714_688)

# %% [markdown]
# ## 3. Load it, and check the transpose
#
# Keras stores a kernel as W[dy, dx, c_in, c_out] ("HWIO"); minidl and PyTorch as
# W[c_out, c_in, dy, dx] ("OIHW"), because the output channel is the row of the
# GEMM that computes the convolution (lesson 04).  The loader therefore does
# `kernel.transpose(3, 2, 0, 1)`.  Both frameworks compute a *correlation*
# (no kernel flip), so no other change is needed.

# %%
model = vgg16(weights=path)
worst = 0.0
for name in (n for n in LAYER_NAMES if not n.endswith("_pool")):
    conv = getattr(model, name)
    kernel = next(v for k, v in kernels.items() if k.startswith(name + "/"))
    bias = next(v for k, v in file_arrays.items() if k.startswith(name + "/") and v.ndim == 1)
    worst = max(worst, np.abs(conv.weight.numpy() - kernel.transpose(3, 2, 0, 1)).max(),
                np.abs(conv.bias.numpy() - bias).max())
check("every loaded kernel == the file's dataset transposed HWIO -> OIHW (and biases equal)",
      worst, 0.0, atol=0.0)
check("read_weights agrees on the layout", read_weights(path).layout == "keras2")

# %% [markdown]
# Equal arrays could still be *used* the wrong way round.  So compute one output
# value of `block1_conv1` by hand from the file's HWIO array:
# y[o, r, c] = b[o] + Σ_{dy,dx,i} W[dy, dx, i, o] · x_pad[i, r+dy, c+dx].

# %%
image = sample("grace_hopper", max_side=SIZE)
x = preprocess(image)
y = model.features(x, "block1_conv1")["block1_conv1"].numpy()
x_pad = np.pad(x.numpy()[0], ((0, 0), (1, 1), (1, 1)))
W, b = kernels[next(k for k in kernels if k.startswith("block1_conv1/"))], model.block1_conv1.bias.numpy()
r, c, o = SIZE // 3, SIZE // 4, 7
by_hand = b[o] + np.einsum("hwi,ihw->", W[:, :, :, o], x_pad[:, r:r + 3, c:c + 3])
check("block1_conv1 output at one pixel == the file's HWIO kernel applied by hand (after ReLU)",
      y[0, o, r, c], max(by_hand, 0.0), atol=1e-3)

# %% [markdown]
# ## 4. Preprocessing: BGR, 0–255, mean subtracted
#
# The original VGG16 was trained in Caffe, which read images with OpenCV: channel
# order **B, G, R**, values **0–255**, and the mean ImageNet colour
# (B 103.939, G 116.779, R 123.68) subtracted — no division by a standard deviation.
# A network only works on inputs like its training data, so `preprocess` does
# exactly this, and `deprocess` undoes it.

# %%
rows, cols = image.shape[:2]
pix = image[rows // 2, cols // 2].astype(np.float32)  # R, G, B
check("channel 0 of the input is blue minus 103.939",
      x.numpy()[0, :, rows // 2, cols // 2], pix[::-1] - MEAN_BGR, atol=1e-4)
check("deprocess(preprocess(img)) == img exactly", deprocess(x), image, atol=0)

# %% [markdown]
# What if we forget to swap the channels?  Red and blue trade places, and the
# first layer's "blue-sky" filters now fire on red things.  Below: the relative
# change of block5_conv1's features when the network gets RGB instead of BGR.

# %%
wrong = minidl.tensor(x.numpy()[:, ::-1].copy())  # RGB order (with the BGR mean: wrong twice)
f_ok = model.features(x, "block5_conv1")["block5_conv1"].numpy()
f_bad = model.features(wrong, "block5_conv1")["block5_conv1"].numpy()
print(f"‖f(RGB) − f(BGR)‖ / ‖f(BGR)‖ at block5_conv1: "
      f"{np.linalg.norm(f_bad - f_ok) / np.linalg.norm(f_ok):.2f}")

# %% [markdown]
# The first layer's 64 kernels are small 3×3 colour images: show them, in RGB
# order, each stretched to its own range.  Trained VGG16's first layer is
# mostly flat *colour* detectors (a kernel of one hue) and grey *edge and corner*
# detectors (light on one side, dark on the other): the raw material of every
# deeper feature.

# %%
w1 = model.block1_conv1.weight.numpy()[:, ::-1]  # (64, 3 BGR->RGB, 3, 3)
fig, axes = plt.subplots(4, 16, figsize=(12, 3.2))
for k, ax in enumerate(axes.flat):
    tile = w1[k].transpose(1, 2, 0)
    ax.imshow((tile - tile.min()) / (np.ptp(tile) + 1e-12), interpolation="nearest")
    ax.axis("off")
fig.suptitle("block1_conv1: the 64 first-layer kernels (RGB, each scaled to its range)")
savefig(fig, args, "first_layer_kernels.png")

# %% [markdown]
# ## 5. How far each layer sees: the receptive field
#
# A 3×3 convolution widens the patch a pixel depends on by 2 *steps*; a 2×2 pool
# doubles the step.  So the receptive field grows 3, 5, 6, 10, 14, 16, 24, … up to
# 212 pixels at block5_pool.  We check the arithmetic against autograd: the
# gradient of one activation with respect to the image is non-zero exactly on
# the patch that activation sees.  ("Non-zero" up to rounding: with Winograd's
# convolution algorithm — `MINIDL_CONV=winograd`, and the default for the wide
# layers — the float32 tile transforms leave values about 10⁻⁶ of the largest
# outside the patch; with `MINIDL_CONV=im2col` they are exact zeros.)

# %%
def receptive_fields():
    size, step, out = 1, 1, {}
    for name in LAYER_NAMES:
        if name.endswith("_pool"):
            size, step = size + step, step * 2
        else:
            size += 2 * step
        out[name] = size
    return out


rf = receptive_fields()
print("receptive field:", {k: v for k, v in rf.items() if k.endswith(("conv1", "pool"))})
check("receptive fields 3 (block1_conv1), 40 (block3_conv3), 212 (block5_pool)",
      (rf["block1_conv1"], rf["block3_conv3"], rf["block5_pool"]) == (3, 40, 212))
probe_layers = ("block1_conv2", "block2_conv2") if args.quick else ("block2_conv2", "block3_conv3", "block4_conv1")
for layer in probe_layers:
    xi = preprocess(image)
    xi.requires_grad = True
    fmap = model.features(xi, layer)[layer]
    h, w = fmap.shape[2:]
    fmap[:, :, h // 2, w // 2].sum().backward()
    grad = xi.grad.numpy()
    magnitude = np.abs(grad[0]).sum(axis=0)
    touched = magnitude > 1e-5 * magnitude.max()  # rounding aside (see the note above)
    extent = (np.ptp(np.nonzero(touched.any(1))[0]) + 1, np.ptp(np.nonzero(touched.any(0))[0]) + 1)
    check(f"{layer}: the gradient of one activation touches a {rf[layer]}x{rf[layer]} patch",
          extent == (rf[layer], rf[layer]))

# %% [markdown]
# ## 6. Feature maps, block by block
#
# Each block's first convolution, for the photo: the size halves from block to
# block while the channels double (64, 128, 256, 512, 512).  We show the six most
# active channels of each.  Shallow maps still look like the photo (edges,
# colours); deep ones are coarse blobs that mark *where* something is (a face, a
# collar), which is why later lessons find that deep layers keep meaning but lose
# detail.

# %%
firsts = [f"block{b}_conv1" for b in range(1, 6)]
feats = {k: v.numpy()[0] for k, v in model.features(x, firsts).items()}
for b, name in enumerate(firsts):
    scale = 2**b
    expected = (BLOCK_CHANNELS[b][0], rows // scale, cols // scale)
    check(f"{name} has shape {expected}", feats[name].shape == expected)
check("feature maps are ReLU outputs: no negative values",
      all(f.min() >= 0 for f in feats.values()))
zeros = {k: float((f == 0).mean()) for k, f in feats.items()}
print("fraction of zeros:", {k: round(v, 2) for k, v in zeros.items()})
if real:
    check("block5_conv1 is sparser than block1_conv1", zeros["block5_conv1"] > zeros["block1_conv1"])

fig, axes = plt.subplots(5, 7, figsize=(12, 9))
for row, name in zip(axes, firsts):
    f = feats[name]
    row[0].imshow(image)
    row[0].set_ylabel(f"{name}\n{f.shape[0]}×{f.shape[1]}×{f.shape[2]}", fontsize=8)
    row[0].set_xticks([]), row[0].set_yticks([])
    for ax, ch in zip(row[1:], np.argsort(f.mean(axis=(1, 2)))[::-1][:6]):
        ax.imshow(f[ch], cmap="magma")
        ax.set_title(f"ch {ch}", fontsize=8)
        ax.axis("off")
fig.suptitle("the six most active channels of each block's first convolution")
savefig(fig, args, "feature_maps.png")

# %% [markdown]
# ## What we learned
# - A weight file is groups, datasets and attributes; h5py reads it in a few lines.
# - Keras kernels are HWIO, minidl's OIHW: one transpose, no flip (both correlate).
# - VGG16 wants BGR, 0–255, mean-subtracted input; `preprocess`/`deprocess` do it.
# - Receptive fields grow from 3 to 212 pixels; maps shrink ×2 and deepen per block.
#
# Next: lesson 08 runs the network *backwards* to see what excites a channel.

# %%
finish(args)
