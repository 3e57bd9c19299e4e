"""VGG16 as a feature extractor: its 13 convolution layers, named as in Keras.

VGG16 (Simonyan & Zisserman, 2014) is five *blocks* of 3x3 convolutions, each
block followed by a 2x2 pooling that halves the height and width::

    block  convolutions (output channels)   then        size of a 224 px input
    1      block1_conv1..2    (64)          block1_pool  224 -> 112
    2      block2_conv1..2   (128)          block2_pool  112 -> 56
    3      block3_conv1..3   (256)          block3_pool   56 -> 28
    4      block4_conv1..3   (512)          block4_pool   28 -> 14
    5      block5_conv1..3   (512)          block5_pool   14 -> 7

Every convolution has padding 1 (so it keeps the size) and is followed by a
ReLU.  The classifier on top (fc1, fc2, predictions) is left out: feature
inversion and style transfer only need the convolutional features.

The layer names are the ones in the Keras weight file, so the state_dict keys
of :class:`VGG16` (``"block1_conv1.weight"``, ``"block1_conv1.bias"``, ...) are
exactly the keys :func:`minidl.weights.load_weights` returns for that file.

Input convention ("Caffe" preprocessing)
----------------------------------------
The pretrained weights were trained on images that were

1. in **BGR** channel order (blue first), because the original Caffe model
   read images with OpenCV, which uses BGR;
2. in the **0-255** range (not 0-1);
3. **centred** by subtracting the mean ImageNet colour, per channel
   (:data:`MEAN_BGR`); there is no division by a standard deviation.

A network only works well on inputs like the ones it was trained on, so
:func:`preprocess` does exactly this to an RGB image and :func:`deprocess`
undoes it.  Feeding RGB, or 0-1 values, gives plausible-looking but wrong
features.

Example::

    from minidl.data import sample
    from minidl.models import vgg16
    from minidl.models.vgg16 import preprocess

    model = vgg16(weights="auto")                   # finds the weight file
    x = preprocess(sample("grace_hopper", max_side=224))
    feats = model.features(x, ["block1_conv1", "block5_conv1"])
    feats["block5_conv1"].shape                     # (1, 512, 14, 14)
"""

from __future__ import annotations

import os

import numpy as np

from minidl import functional as F
from minidl.nn import AvgPool2d, Conv2d, MaxPool2d, Module
from minidl.tensor import Tensor, tensor

# Output channels of the convolutions, one tuple per block.
BLOCK_CHANNELS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _layer_names() -> tuple[str, ...]:
    """``block<b>_conv<i>`` for each convolution of block b, then ``block<b>_pool``."""
    names = []
    for block, channels in enumerate(BLOCK_CHANNELS, start=1):
        names += [f"block{block}_conv{i}" for i in range(1, len(channels) + 1)]
        names.append(f"block{block}_pool")
    return tuple(names)


#: All 18 layers in the order the input goes through them:
#: ``("block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", ..., "block5_pool")``.
LAYER_NAMES = _layer_names()

#: The ImageNet mean colour in **B, G, R** order, on the 0-255 scale.  It is
#: subtracted by :func:`preprocess` and added back by :func:`deprocess`.
MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

POOLINGS = ("max", "avg")


class VGG16(Module):
    """The 13 convolutions and 5 poolings of VGG16, without the classifier.

    Args:
        pooling: ``"max"`` (as VGG16 was trained) or ``"avg"``.  Gatys et al.
            (2016) found average pooling gives smoother, nicer images in style
            transfer; the weights are the same either way.
        seed: seed of the random initialisation (PyTorch's default for
            convolutions); layer ``i`` uses ``seed + i``, so two models built
            with the same seed are identical.

    Every layer is an attribute named as in Keras (``model.block1_conv1`` is a
    :class:`~minidl.nn.Conv2d`, ``model.block1_pool`` a pooling layer).  Use
    :func:`vgg16` to build one with pretrained weights.
    """

    def __init__(self, pooling: str = "max", seed: int = 0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"VGG16: pooling must be 'max' or 'avg', got {pooling!r}")
        self.pooling = pooling
        in_channels = 3
        # setattr registers each layer under its Keras name, in network order.
        for block, channels in enumerate(BLOCK_CHANNELS, start=1):
            for i, out_channels in enumerate(channels, start=1):
                layer_seed = seed + len(self._modules)  # a different seed for every layer
                conv = Conv2d(in_channels, out_channels, 3, padding=1, seed=layer_seed)
                setattr(self, f"block{block}_conv{i}", conv)
                in_channels = out_channels
            pool = MaxPool2d(2, stride=2) if pooling == "max" else AvgPool2d(2, stride=2)
            setattr(self, f"block{block}_pool", pool)
        assert tuple(self._modules) == LAYER_NAMES

    @property
    def device(self) -> str:
        """The device the weights are on (``"cpu"``, ``"cuda"`` or ``"cuda-emu"``)."""
        return self.block1_conv1.weight.device

    def features(self, x: Tensor, layers) -> dict[str, Tensor]:
        """Run ``x`` through the network and return the outputs of ``layers``.

        Args:
            x: a preprocessed batch of shape (N, 3, H, W) (see :func:`preprocess`),
               on the model's device.
            layers: one layer name or a list of them, from :data:`LAYER_NAMES`.

        Returns:
            ``{name: output}`` for each requested layer, in network order.
            Convolution outputs are taken *after* their ReLU, as in Keras.

        The input goes only as deep as the deepest requested layer: asking for
        ``block1_conv1`` alone costs one convolution, not thirteen.
        """
        wanted = [layers] if isinstance(layers, str) else list(layers)
        if not wanted:
            raise ValueError("VGG16.features: no layers requested; choose from " + _valid())
        unknown = [name for name in wanted if name not in LAYER_NAMES]
        if unknown:
            raise ValueError(
                f"VGG16.features: unknown layer(s) {', '.join(map(repr, unknown))}; "
                f"valid names are: {_valid()}"
            )
        self._check_input(x)
        deepest = max(LAYER_NAMES.index(name) for name in wanted)
        # Each pooling halves the size, so reaching the deepest layer needs at least
        # 2**(number of poolings on the way) pixels per side.
        pools = sum(name.endswith("_pool") for name in LAYER_NAMES[: deepest + 1])
        if min(x.shape[2:]) < 2**pools:
            raise ValueError(
                f"VGG16.features: input of {x.shape[2]}x{x.shape[3]} pixels is too small for "
                f"{LAYER_NAMES[deepest]}: the {pools} pooling(s) up to it need at least "
                f"{2**pools} pixels per side"
            )
        outputs = {}
        for name in LAYER_NAMES[: deepest + 1]:
            x = self._run_layer(name, x)
            if name in wanted:
                outputs[name] = x
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        """All 18 layers: the output of ``block5_pool``, shape (N, 512, H/32, W/32)."""
        return self.features(x, LAYER_NAMES[-1])[LAYER_NAMES[-1]]

    def _run_layer(self, name: str, x: Tensor) -> Tensor:
        """One layer: a pooling, or a convolution followed by its ReLU."""
        layer = getattr(self, name)
        if name.endswith("_pool"):
            return layer(x)
        return F.relu(layer(x))

    def _check_input(self, x) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"VGG16: expected a Tensor of shape (N, 3, H, W), got {type(x).__name__}; "
                f"use minidl.models.vgg16.preprocess(image) to make one from an image"
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"VGG16: expected input of shape (N, 3, H, W) (a batch of BGR images), "
                f"got {x.shape}; use minidl.models.vgg16.preprocess(image)"
            )
        if x.device != self.device:
            raise ValueError(
                f"VGG16: input is on {x.device!r} but the model is on {self.device!r}; "
                f"use x.to({self.device!r}) or model.to({x.device!r})"
            )

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}"


def _valid() -> str:
    return ", ".join(LAYER_NAMES)


def vgg16(
    weights: str | os.PathLike | None = None,
    pooling: str = "max",
    device: str = "cpu",
    seed: int = 0,
) -> VGG16:
    """Build a VGG16 feature extractor in eval mode.

    Args:
        weights: where the weights come from:

            - ``None``: random (PyTorch's default initialisation, seeded by
              ``seed``, so the same every time); for tests and for seeing what
              an *untrained* network does.
            - a path to a weight file in any layout :mod:`minidl.weights` reads
              (Keras 2, Keras 3 or minidl).  A "with top" Keras file also works:
              its convolutions are used and its dense layers reported as ignored.
            - ``"auto"``: the file :func:`minidl.weights.find_weights` finds
              (``MINIDL_WEIGHTS``, the project's weights/ folder, the user cache).
        pooling: ``"max"`` or ``"avg"`` (see :class:`VGG16`).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda-emu"``.

    The load is strict: a file whose keys or shapes do not fit VGG16 raises
    :class:`minidl.weights.WeightsError` naming the file and the keys, and
    nothing is loaded.

    The parameters come frozen (``requires_grad`` False): a feature extractor
    passes gradients to its input, for inversion and style transfer, without
    spending a GEMM per layer on weight gradients nobody uses.  Call
    ``model.requires_grad_(True)`` to train it.
    """
    from minidl.weights import find_weights, load_weights

    model = VGG16(pooling=pooling, seed=seed)
    if weights is not None:
        path = find_weights() if str(weights) == "auto" else weights
        expected = {name: p.shape for name, p in model.named_parameters()}  # checked before reading
        model.load_state_dict(load_weights(path, expected=expected), strict=True, source=str(path))
    return model.to(device).eval().requires_grad_(False)


def preprocess(image: np.ndarray, device: str = "cpu") -> Tensor:
    """Turn an RGB ``uint8`` image into VGG16's input: a (1, 3, H, W) float32 Tensor.

    ``image`` is (H, W, 3), or a batch (N, H, W, 3) giving (N, 3, H, W).  The
    steps, which match how the pretrained weights were trained (see the module
    docstring): RGB -> BGR, keep the 0-255 scale, subtract :data:`MEAN_BGR`,
    and move the channels first (HWC -> CHW).
    """
    image = np.asarray(image)
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(
            f"preprocess: expected an RGB image (H, W, 3) or a batch (N, H, W, 3), "
            f"got shape {image.shape}"
        )
    if image.dtype != np.uint8:
        raise TypeError(f"preprocess: expected a uint8 image (0-255), got dtype {image.dtype}")
    batch = image[None] if image.ndim == 3 else image
    bgr = batch[..., ::-1].astype(np.float32)  # reverse the channel axis: RGB -> BGR
    centred = bgr - MEAN_BGR  # broadcasts over the last (channel) axis
    nchw = centred.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    return tensor(np.ascontiguousarray(nchw), device=device, dtype=np.float32)


def deprocess(x) -> np.ndarray:
    """Undo :func:`preprocess`: the first image of a batch as (H, W, 3) ``uint8`` RGB.

    ``x`` is a Tensor (or array) of shape (N, 3, H, W) or (3, H, W).  The mean is
    added back, BGR becomes RGB, and values are rounded and clipped to 0-255
    (an optimised image may have drifted outside that range).
    """
    array = x.detach().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(
            f"deprocess: expected shape (N, 3, H, W) or (3, H, W), got {tuple(np.shape(x))}"
        )
    bgr = array.transpose(1, 2, 0) + MEAN_BGR  # (C, H, W) -> (H, W, C), then un-centre
    rgb = bgr[..., ::-1]  # BGR -> RGB
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
