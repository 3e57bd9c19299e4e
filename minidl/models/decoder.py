"""Decoders: "reverse VGG16" networks that turn a layer's features back into an image.

A decoder mirrors VGG16 from one layer (``block1_conv1`` ... ``block4_conv1``)
back to the input: every convolution of the encoder, read backwards, becomes a
convolution from its output channels to its input channels, and every 2x2
pooling becomes a 2x upsampling.  For ``block3_conv1`` (a 128 px input gives
256 channels of 32x32)::

    encoder (VGG16)                           decoder (this module)
    block1_conv1   3 ->  64                   conv  32 ->  3     (no ReLU: output)
    block1_conv2  64 ->  64                   conv  32 -> 32
    block1_pool   /2                          x2 upsampling
    block2_conv1  64 -> 128                   conv  64 -> 32
    block2_conv2 128 -> 128                   conv  64 -> 64
    block2_pool   /2                          x2 upsampling
    block3_conv1 128 -> 256                   conv 256 -> 64     (input: the features)

(read the decoder column bottom-up).  The decoder is ``width`` times as wide as
VGG16 (default 0.5: half the channels), which makes it four times cheaper per
convolution and trains much faster on a CPU; its first convolution still takes
all of the layer's channels, so no information is thrown away.

Two ways to upsample, chosen by ``arch``:

``"resize"``
    nearest-neighbour upsampling, then a reflection-padded 3x3 convolution
    (Odena et al., 2016; what AdaIN's decoder uses).  Every output pixel is
    computed the same way, so a constant input gives a constant image.
``"transpose"``
    a stride-2 transposed convolution (3x3 kernel) in place of "upsample +
    convolution".  With a kernel size not divisible by the stride, output
    pixels at even and odd positions receive different numbers of kernel taps
    ("uneven overlap"), which shows as a checkerboard pattern.

The output is an image in VGG16's own input convention (BGR, 0-255, ImageNet
mean subtracted), so ``deprocess(decoder(features))`` is an RGB image.

A decoder saves to minidl's HDF5 format with its layer, arch, width and how it
was trained in the file's metadata, so :func:`load_decoder` rebuilds the right
network from the file alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from minidl import functional as F
from minidl.models.vgg16 import BLOCK_CHANNELS, LAYER_NAMES
from minidl.nn import Conv2d, ConvTranspose2d, Module
from minidl.tensor import Tensor
from minidl.tensor_ops import concat

#: Layers a decoder can start from.
LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
ARCHS = ("resize", "transpose")
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "decoders"


def _encoder_steps(layer: str) -> list[tuple]:
    """VGG16's layers up to ``layer``: ``("conv", c_in, c_out)`` or ``("pool",)``."""
    steps, c_in = [], 3
    for block, channels in enumerate(BLOCK_CHANNELS, start=1):
        for i, c_out in enumerate(channels, start=1):
            steps.append(("conv", c_in, c_out))
            c_in = c_out
            if f"block{block}_conv{i}" == layer:
                return steps
        steps.append(("pool",))
    raise AssertionError(layer)


def pools_before(layer: str) -> int:
    """How many 2x2 poolings VGG16 applies before ``layer`` (its input is 2**n times larger)."""
    return sum(name.endswith("_pool") for name in LAYER_NAMES[: LAYER_NAMES.index(layer)])


def reflect_pad1(x: Tensor) -> Tensor:
    """Reflection padding by one pixel, the same as ``F.reflection_pad2d(x, 1)``.

    Built from slices and concatenation rather than integer-array indexing: the
    gradient of a slice is a plain add, where the indexed version needs
    ``np.add.at``, which made up a seventh of a decoder's training step.
    """
    x = concat([x[:, :, 1:2], x, x[:, :, -2:-1]], axis=2)
    return concat([x[:, :, :, 1:2], x, x[:, :, :, -2:-1]], axis=3)


class _ResizeUp(Module):
    """Nearest 2x upsampling then a reflection-padded 3x3 convolution."""

    def __init__(self, c_in, c_out, seed):
        super().__init__()
        self.conv = Conv2d(c_in, c_out, 3, seed=seed)

    def forward(self, x):
        return self.conv(reflect_pad1(F.upsample_nearest(x, 2)))


class _TransposeUp(Module):
    """A stride-2 3x3 transposed convolution: doubles the size in one step."""

    def __init__(self, c_in, c_out, seed):
        super().__init__()
        self.conv = ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1,
                                    seed=seed)

    def forward(self, x):
        return self.conv(x)


class _PaddedConv(Module):
    """A reflection-padded 3x3 convolution (keeps the size, no zero border)."""

    def __init__(self, c_in, c_out, seed):
        super().__init__()
        self.conv = Conv2d(c_in, c_out, 3, seed=seed)

    def forward(self, x):
        return self.conv(reflect_pad1(x))


class Decoder(Module):
    """VGG16 read backwards, from ``layer`` to a (BGR, mean-subtracted) image.

    Args:
        layer: the VGG16 layer whose features (after ReLU) it decodes, one of
            :data:`LAYERS`.
        arch: ``"resize"`` or ``"transpose"`` (see the module docstring).
        width: channels relative to VGG16 (0.5 = half); the input keeps all of them.
        seed: seed of the initial weights (layer ``i`` uses ``seed + i``).

    Its layers are ``stage0``, ``stage1``, ...: each a 3x3 convolution, a
    :class:`_ResizeUp` or a :class:`_TransposeUp`; a ReLU follows all but the last.
    """

    def __init__(self, layer: str = "block3_conv1", arch: str = "resize", width: float = 0.5,
                 seed: int = 0):
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"Decoder: layer must be one of {', '.join(LAYERS)}, got {layer!r}")
        if arch not in ARCHS:
            raise ValueError(f"Decoder: arch must be 'resize' or 'transpose', got {arch!r}")
        if not 0 < width <= 1:
            raise ValueError(f"Decoder: width must be in (0, 1], got {width!r}")
        self.layer, self.arch, self.width = layer, arch, float(width)
        self.in_channels = _encoder_steps(layer)[-1][2]

        def narrow(c):  # the image's 3 channels and the input features keep their count
            return c if c == 3 else max(1, round(c * width))

        steps = _encoder_steps(layer)[::-1]
        up = _ResizeUp if arch == "resize" else _TransposeUp
        upsample_next = False
        c_prev = self.in_channels
        stages = []
        for step in steps:
            if step[0] == "pool":
                upsample_next = True
                continue
            _, c_in, _ = step  # the encoder's conv c_in -> c_out becomes c_out -> c_in
            block = up if upsample_next else _PaddedConv
            stages.append(block(c_prev, narrow(c_in), seed + len(stages)))
            c_prev, upsample_next = narrow(c_in), False
        for i, stage in enumerate(stages):
            setattr(self, f"stage{i}", stage)
        self._stages = len(stages)

    def forward(self, features: Tensor) -> Tensor:
        """(N, C, h, w) features of ``layer`` -> (N, 3, h * 2**pools, w * 2**pools) image."""
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(
                f"Decoder({self.layer}): expected features of shape (N, {self.in_channels}, h, w), "
                f"got {features.shape}"
            )
        x = features
        for i in range(self._stages):
            x = getattr(self, f"stage{i}")(x)
            if i < self._stages - 1:
                x = F.relu(x)
        return x

    @property
    def pools(self) -> int:
        """The image is 2**pools times larger than the features, per side."""
        return pools_before(self.layer)

    def config(self) -> dict:
        """What :func:`load_decoder` needs to rebuild this network."""
        return {"module": "Decoder", "layer": self.layer, "arch": self.arch, "width": self.width}

    def save(self, path, training: dict | None = None, overwrite: bool = False,
             dtype=np.float16) -> Path:
        """Write the weights (as ``dtype``; float16 halves the file) and the config.

        ``training`` (how the decoder was trained: images, steps, losses, ...)
        goes into the file's metadata beside the config.  Written atomically.
        """
        from minidl.weights import save_state_dict

        state = {k: v.astype(dtype) for k, v in self.state_dict().items()}
        metadata = {**self.config(), "training": training or {}}
        return save_state_dict(path, state, metadata, overwrite=overwrite)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, arch={self.arch!r}, width={self.width}"


def fit_to_layer(image: np.ndarray, pools: int) -> np.ndarray:
    """Crop the bottom/right edge so both sides are multiples of 2**pools
    (each pooling halves the size; the decoder doubles it back exactly)."""
    step = 2**pools
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    if h == 0 or w == 0:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} is too small: a decoder of "
                         f"{pools} pooling(s) needs at least "
                         f"{step} pixels per side")
    return image[:h, :w]


def reconstruct(vgg, decoder: Decoder, image: np.ndarray) -> np.ndarray:
    """image -> VGG16 -> decoder -> image: what the decoder's layer keeps of ``image``.

    ``image`` (uint8 RGB) is first cropped by :func:`fit_to_layer`; the result
    has the cropped size.
    """
    from minidl.autograd import no_grad
    from minidl.models.vgg16 import deprocess, preprocess

    with no_grad():
        x = preprocess(fit_to_layer(image, decoder.pools), vgg.device)
        return deprocess(decoder(vgg.features(x, decoder.layer)[decoder.layer]))


def shipped_decoder_path(layer: str, arch: str = "resize", adain: bool = False) -> Path:
    """Path of the decoder shipped with minidl for ``layer`` and ``arch``.

    ``adain=True``: the one fine-tuned for AdaIN style transfer
    (``train-decoder --style-images``), which AdaIN uses when it exists.
    """
    if layer not in LAYERS or arch not in ARCHS:
        raise ValueError(
            f"shipped_decoder_path: no decoder for layer {layer!r}, arch {arch!r}; "
            f"layers: {', '.join(LAYERS)}; archs: {', '.join(ARCHS)}"
        )
    return SHIPPED_DIR / f"{layer}_{arch}{'_adain' if adain else ''}.h5"


def read_decoder_metadata(path) -> dict:
    """The config and training settings stored in a decoder file."""
    from minidl.weights import read_weights

    metadata = read_weights(path).metadata
    if metadata.get("module") != "Decoder":
        raise ValueError(f"{path}: not a decoder file (its metadata says {metadata or 'nothing'})")
    return metadata


def load_decoder(path_or_layer: str | os.PathLike, device: str = "cpu",
                 layer: str | None = None) -> Decoder:
    """Load a decoder from a file, or the shipped one when given a layer name.

    With ``layer``, the file must decode that layer (a ``block4_conv1`` decoder
    cannot decode ``block3_conv1`` features): anything else is a ValueError.
    The network is returned in eval mode, frozen, in float32 on ``device``.
    """
    from minidl.weights import inspect_weights

    spec = str(path_or_layer)
    path = shipped_decoder_path(spec) if spec in LAYERS else Path(spec)
    if not path.is_file():
        where = "shipped decoder" if spec in LAYERS else "decoder file"
        raise FileNotFoundError(f"{where} not found: {path}")
    metadata = inspect_weights(path).metadata  # metadata only: no array is read yet
    if metadata.get("module") != "Decoder":
        raise ValueError(f"{path}: not a decoder file (its metadata says {metadata or 'nothing'})")
    if layer is not None and metadata["layer"] != layer:
        raise ValueError(
            f"{path}: this decoder decodes {metadata['layer']}, not {layer} as asked"
        )
    decoder = Decoder(metadata["layer"], metadata["arch"], metadata["width"])
    decoder.load(path)  # checks every declared shape against this decoder before reading
    decoder.training_settings = metadata.get("training", {})
    return decoder.to(device).eval().requires_grad_(False)
