"""Project one activation back to pixels: deconvnet, guided backprop, gradient.

Zeiler & Fergus (2014) asked which pixels made a unit fire.  Take the single
strongest activation of one channel at a layer, set everything else at that
layer to zero, and run the network *backwards* to the image:

* a max pooling is undone by :func:`~minidl.functional.max_unpool2d` with the
  forward pass's *switches* (where each maximum came from);
* a convolution is undone by :func:`~minidl.functional.conv_transpose2d` with
  the same filters (the transpose of the convolution; no bias);
* a ReLU is where the three rules differ.  With r the signal coming back and
  a the ReLU's forward output::

      gradient   r · [a > 0]            the chain rule: pass where the unit was on
      deconvnet  max(r, 0)              ignore the forward pass, keep what is positive
      guided     max(r, 0) · [a > 0]    both (Springenberg et al., 2015)

  So the plain gradient lets negative evidence through, the deconvnet forgets
  which units were on (its pictures show what the unit *looks for*, less what
  *this* image had), and guided backprop keeps only positive evidence where
  the unit fired, which gives the sharpest pictures.

Where no ReLU intervenes the three agree: a ``block1_conv1`` unit projects
back to its own 3x3 filter times its activation, placed where it fired.
The ``gradient`` rule is exactly the input gradient autograd computes.

Example::

    from minidl.inversion.deconvnet import project, top_channels
    feats = model.features(x, "block5_conv3")["block5_conv3"]
    for c in top_channels(feats, 9):
        picture = project(model, x, "block5_conv3", c, rule="guided")   # (1, 3, H, W)
"""

from __future__ import annotations

import numpy as np

import minidl.functional as F
from minidl.autograd import no_grad
from minidl.models.vgg16 import LAYER_NAMES
from minidl.tensor import Tensor

RULES = ("deconvnet", "guided", "gradient")


def project(model, x: Tensor, layer: str, channel: int, rule: str = "deconvnet") -> Tensor:
    """Project the strongest activation of ``channel`` at ``layer`` back to the input.

    ``model`` is a VGG16 with max pooling; ``x`` one preprocessed image (1, 3, H, W).
    Returns a (1, 3, H, W) Tensor in the input's units (no graph).
    """
    signal, trace = strongest_signal(model, x, layer, channel)
    return backward_pass(model, signal, trace, rule)


def strongest_signal(model, x: Tensor, layer: str, channel: int):
    """Forward to ``layer``; return (signal, trace) for ``channel`` (see
    :func:`forward_trace` and :func:`single_activation`)."""
    _check(model, x, layer, channel)
    top, trace = forward_trace(model, x, layer)
    signal, _ = single_activation(top, channel)
    return signal, trace


def forward_trace(model, x: Tensor, layer: str):
    """Run ``x`` up to ``layer``; return (its output, trace).

    ``trace`` holds what the way back needs from each layer, in order: a
    convolution's ReLU output, or a pooling's switches and input size.  It is
    the same for every channel, so one forward pass serves them all.
    """
    trace = []
    with no_grad():
        h = x
        for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]:
            if name.endswith("_pool"):
                input_hw = h.shape[2:]
                h, switches = F.max_pool2d(h, 2, 2, return_indices=True)
                trace.append((name, switches, input_hw))
            else:
                h = F.relu(getattr(model, name)(h))
                trace.append((name, h, None))
    return h, trace


def single_activation(top: Tensor, channel: int):
    """(signal, (i, j)): ``top`` zeroed except the strongest activation of ``channel``,
    which keeps its value, and where that activation is."""
    plane = top.numpy()[0, channel]
    i, j = (int(v) for v in np.unravel_index(int(np.argmax(plane)), plane.shape))
    mask = np.zeros(top.shape, dtype=top.dtype)
    mask[0, channel, i, j] = 1.0
    with no_grad():
        return top * Tensor(top.xp.asarray(mask), device=top.device), (i, j)


def backward_pass(model, signal: Tensor, trace, rule: str) -> Tensor:
    """Run ``signal`` from the top of ``trace`` down to the pixels with ``rule``."""
    if rule not in RULES:
        raise ValueError(f"project: rule must be one of {', '.join(RULES)}, got {rule!r}")
    r = signal
    with no_grad():
        for name, saved, input_hw in reversed(trace):
            if name.endswith("_pool"):
                r = F.max_unpool2d(r, saved, 2, 2, output_size=input_hw)
            else:
                r = _through_relu(r, saved, rule)
                conv = getattr(model, name)
                r = F.conv_transpose2d(r, conv.weight, stride=1, padding=1)
    return r


def _through_relu(r: Tensor, output: Tensor, rule: str) -> Tensor:
    if rule == "deconvnet":
        return F.relu(r)
    was_on = Tensor((output.data > 0).astype(output.dtype), device=output.device)  # [a > 0]
    return r * was_on if rule == "gradient" else F.relu(r) * was_on


def top_channels(features: Tensor, k: int) -> list[int]:
    """The ``k`` channels of a (1, C, H, W) feature map with the largest single
    activation, strongest first."""
    array = features.numpy()[0]
    peaks = array.reshape(array.shape[0], -1).max(axis=1)
    return [int(c) for c in np.argsort(-peaks, kind="stable")[:k]]


def receptive_field(layer: str, i: int, j: int) -> tuple[int, int, int, int]:
    """The input rows and columns ``(top, left, bottom, right)`` (exclusive ends,
    may extend past the image) that unit (i, j) of ``layer`` sees.

    Walk the layers: a 3x3 convolution (padding 1) widens the field by one
    input step on each side; a 2x2 pooling (stride 2) by one step at the end,
    and doubles the step between neighbouring units.
    """
    size, step, offset = 1, 1, 0
    for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]:
        if name.endswith("_pool"):
            size += step
            step *= 2
        else:
            size += 2 * step
            offset -= step
    top, left = offset + i * step, offset + j * step
    return top, left, top + size, left + size


def strongest_position(model, x: Tensor, layer: str, channel: int) -> tuple[int, int]:
    """(i, j) of the strongest activation of ``channel`` at ``layer``."""
    _check(model, x, layer, channel)
    top, _ = forward_trace(model, x, layer)
    return single_activation(top, channel)[1]


def _check(model, x, layer, channel) -> None:
    if getattr(model, "pooling", "max") != "max":
        raise ValueError("project: the deconvnet needs a VGG16 with max pooling (switches)")
    if layer not in LAYER_NAMES:
        raise ValueError(f"unknown layer {layer!r}; valid names: {', '.join(LAYER_NAMES)}")
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"project: expected one preprocessed image (1, 3, H, W), got {x.shape}")
    count = channel_count(model, layer)
    if not 0 <= int(channel) < count:
        raise ValueError(f"project: channel {channel} out of range: {layer} has {count} channels")


def channel_count(model, layer: str) -> int:
    """How many channels ``layer`` outputs (a pooling keeps its convolution's)."""
    convs = [n for n in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1] if not n.endswith("_pool")]
    return getattr(model, convs[-1]).weight.shape[0]
