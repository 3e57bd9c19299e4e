"""Differentiable neural-network operations, with ``torch.nn.functional``'s names,
argument names and semantics (``import minidl.functional as F``).

One file per family:

==============  ===============================================================
conv.py         conv2d, conv_transpose2d, unfold (im2col), fold (col2im)
pool.py         max_pool2d, max_unpool2d, avg_pool2d
gram.py         gram_matrix
activations.py  relu, leaky_relu, sigmoid, tanh, softmax, log_softmax
padding.py      pad, reflection_pad2d
resampling.py   interpolate, upsample_nearest
norms.py        instance_norm, batch_norm, adain
losses.py       mse_loss, l1_loss, tv_loss, ssim
checks.py       the argument checks they share, and the backend they run on
==============  ===============================================================

Convolutions, unfold/fold, pooling and Gram matrices are computed by the
tensor's *backend* (``minidl.backends``: NumPy, the CUDA kernels, or the same
kernels emulated on the CPU).  Everything else is composed from Tensor
operations, so autograd derives its gradient for free.  Window sizes and the
checks of (h, w) arguments come from ``minidl.geometry``.
"""

from minidl.functional.activations import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from minidl.functional.conv import conv2d, conv_transpose2d, fold, unfold
from minidl.functional.gram import gram_matrix
from minidl.functional.losses import l1_loss, mse_loss, ssim, tv_loss
from minidl.functional.norms import adain, batch_norm, instance_norm
from minidl.functional.padding import pad, reflection_pad2d
from minidl.functional.pool import avg_pool2d, max_pool2d, max_unpool2d
from minidl.functional.resampling import interpolate, upsample_nearest

# fmt: off
__all__ = [
    "adain", "avg_pool2d", "batch_norm", "conv2d", "conv_transpose2d", "fold", "gram_matrix",
    "instance_norm", "interpolate", "l1_loss", "leaky_relu", "log_softmax", "max_pool2d",
    "max_unpool2d", "mse_loss", "pad", "reflection_pad2d", "relu", "sigmoid", "softmax", "ssim",
    "tanh", "tv_loss", "unfold", "upsample_nearest",
]
# fmt: on
