"""Bad arguments give errors that say which op, which argument and which shapes."""

import numpy as np
import pytest

import minidl.functional as F
from minidl.tensor import tensor
from minidl.tensor_ops import concat, stack


def t(*shape, dtype=np.float64, device="cpu"):
    return tensor(np.ones(shape, dtype=dtype), device=device)


X = t(1, 2, 5, 5)
W = t(3, 2, 3, 3)


# ------------------------------------------------------------ rank and channels
@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: F.conv2d(t(2, 5, 5), W), r"conv2d: input must be 4-D .*got shape \(2, 5, 5\)"),
        (lambda: F.conv2d(X, t(3, 2, 3)), r"conv2d: weight must be 4-D .*got shape \(3, 2, 3\)"),
        (lambda: F.conv_transpose2d(t(5, 5), W), r"conv_transpose2d: input must be 4-D .*\(5, 5\)"),
        (lambda: F.max_pool2d(t(2, 4, 4), 2), r"max_pool2d: input must be 4-D .*\(2, 4, 4\)"),
        (lambda: F.avg_pool2d(t(4, 4), 2), r"avg_pool2d: input must be 4-D .*\(4, 4\)"),
        (lambda: F.gram_matrix(t(2, 3)), r"gram_matrix: input must be 4-D .*\(2, 3\)"),
        (lambda: F.instance_norm(t(2, 3)), r"instance_norm: input must be 4-D .*\(2, 3\)"),
        (lambda: F.upsample_nearest(t(1, 2, 3)), r"upsample_nearest: input must be 4-D"),
    ],
)
def test_wrong_rank(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_channel_mismatch():
    with pytest.raises(ValueError, match=r"conv2d: input has 2 channels but weight expects 4 "
                                         r"\(input \(1, 2, 5, 5\), weight \(3, 4, 3, 3\); "
                                         r"weight is \(C_out, C_in, kh, kw\)\)"):
        F.conv2d(X, t(3, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input has 2 channels but weight "
                                         r"expects 3 \(input \(1, 2, 5, 5\), weight \(3, 2, 3, 3\)"):
        F.conv_transpose2d(X, W)  # its weight is (C_in, C_out, kh, kw)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(3,\), got \(2,\)"):
        F.conv2d(X, W, t(2))
    with pytest.raises(ValueError, match=r"adain: style \(1, 3, 2, 2\) must have the channels "
                                         r"of content \(1, 2, 5, 5\)"):
        F.adain(X, t(1, 3, 2, 2))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel \(extent 7\) is larger than the padded "
                                         r"input \(5 \+ 2\*0\); .*input \(1, 2, 5, 5\), weight "
                                         r"\(3, 2, 7, 7\)"):
        F.conv2d(X, t(3, 2, 7, 7))
    # dilation 3 stretches a 3x3 kernel to extent 7
    with pytest.raises(ValueError, match=r"conv2d: kernel \(extent 7\) .*\(5 \+ 2\*0\)"):
        F.conv2d(X, W, padding=(0, 3), dilation=3)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel \(extent 6\) .*input \(1, 2, 5, 5\)"):
        F.max_pool2d(X, 6)
    with pytest.raises(ValueError, match=r"ssim: images \(1, 2, 5, 5\) are smaller than the window"):
        F.ssim(X, X)


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_non_positive_stride(stride):
    with pytest.raises(ValueError, match=r"conv2d: stride must be positive, got .*input "
                                         r"\(1, 2, 5, 5\), weight \(3, 2, 3, 3\)"):
        F.conv2d(X, W, stride=stride)
    with pytest.raises(ValueError, match=r"conv_transpose2d: stride must be positive.*input "
                                         r"\(1, 2, 5, 5\)"):
        F.conv_transpose2d(X, t(2, 3, 3, 3), stride=stride)
    with pytest.raises(ValueError, match=r"max_pool2d: stride must be positive.*input \(1, 2, 5, 5\)"):
        F.max_pool2d(X, 2, stride=stride)


def test_non_positive_kernel_size_and_dilation():
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel_size must be positive, got 0"):
        F.avg_pool2d(X, 0)
    with pytest.raises(ValueError, match=r"conv2d: dilation must be positive, got 0.*weight"):
        F.conv2d(X, W, dilation=0)


def test_negative_padding():
    with pytest.raises(ValueError, match=r"conv2d: padding must be >= 0, got -1 "
                                         r"\(input \(1, 2, 5, 5\), weight \(3, 2, 3, 3\)\)"):
        F.conv2d(X, W, padding=-1)
    with pytest.raises(ValueError, match=r"conv_transpose2d: padding must be >= 0, got \(0, -2\)"):
        F.conv_transpose2d(X, t(2, 3, 3, 3), padding=(0, -2))
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half the "
                                         r"kernel size \(2, 2\) \(input \(1, 2, 5, 5\)\)"):
        F.max_pool2d(X, 2, padding=2)
    with pytest.raises(ValueError, match=r"reflection_pad2d: padding must be >= 0"):
        F.reflection_pad2d(X, (1, -1, 0, 0))
    with pytest.raises(ValueError, match=r"reflection_pad2d: padding 5 must be smaller than the "
                                         r"input size \(5, 5\)"):
        F.reflection_pad2d(X, 5)


def test_bad_argument_types():
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a pair of ints, got "
                                        r"\(1, 2, 3\) \(input \(1, 2, 5, 5\)"):
        F.conv2d(X, W, stride=(1, 2, 3))
    with pytest.raises(TypeError, match=r"conv2d: weight must be a Tensor, got ndarray"):
        F.conv2d(X, np.ones((3, 2, 3, 3)))


def test_output_padding_too_big():
    w = t(2, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding \(2, 2\) must be "
                                         r"smaller than stride \(2, 2\) "
                                         r"\(input \(1, 2, 5, 5\), weight \(2, 3, 3, 3\)\)"):
        F.conv_transpose2d(X, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding \(1, 1\) must be "
                                         r"smaller than stride \(1, 1\)"):
        F.conv_transpose2d(X, w, output_padding=1)
    # PyTorch would take this one (output_padding < dilation); minidl says no clearly
    # instead of failing inside the backend.
    with pytest.raises(ValueError, match=r"output_padding \(1, 1\) must be smaller than stride"):
        F.conv_transpose2d(X, w, dilation=2, output_padding=1)


def test_conv_transpose2d_output_smaller_than_one():
    with pytest.raises(ValueError, match=r"conv_transpose2d: output size would be -1 < 1 "
                                         r"\(input \(1, 2, 1, 1\), weight \(2, 3, 1, 1\)"):
        F.conv_transpose2d(t(1, 2, 1, 1), t(2, 3, 1, 1), padding=1)


def test_max_unpool2d_bad_indices():
    y, indices = F.max_pool2d(t(1, 1, 4, 4), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"max_unpool2d: indices must be a Tensor of the input's "
                                         r"shape \(1, 1, 2, 2\), got \(1, 1, 1, 2\)"):
        F.max_unpool2d(y, indices[:, :, :1], 2)
    with pytest.raises(ValueError, match=r"max_unpool2d: indices must lie in \[0, 4\) for output "
                                         r"size \(2, 2\)"):
        F.max_unpool2d(y, indices, 2, output_size=(2, 2))


# ------------------------------------------------------------ dtypes and devices
def test_mixed_dtypes():
    x32 = t(1, 2, 5, 5, dtype=np.float32)
    with pytest.raises(TypeError, match=r"conv2d: mixed dtypes: input \(1, 2, 5, 5\) float32, "
                                        r"weight \(3, 2, 3, 3\) float64"):
        F.conv2d(x32, W)
    with pytest.raises(TypeError, match=r"conv_transpose2d: mixed dtypes: .*bias \(3,\) float32"):
        F.conv_transpose2d(X, t(2, 3, 3, 3), t(3, dtype=np.float32))
    with pytest.raises(TypeError, match=r"add: mixed dtypes float32 \(2,\) and float64 \(2,\)"):
        t(2, dtype=np.float32) + t(2)
    with pytest.raises(TypeError, match=r"mul: mixed dtypes"):
        t(2, dtype=np.float32) * t(2)
    with pytest.raises(TypeError, match=r"matmul: mixed dtypes float32 \(2, 3\) and float64 \(3,\)"):
        t(2, 3, dtype=np.float32) @ t(3)
    with pytest.raises(TypeError, match=r"concat: mixed dtypes: \(2,\) float64, \(2,\) float32"):
        concat([t(2), t(2, dtype=np.float32)])
    with pytest.raises(TypeError, match=r"mse_loss: mixed dtypes: input \(2,\) float64, "
                                        r"target \(2,\) float32"):
        F.mse_loss(t(2), t(2, dtype=np.float32))


def test_mixed_devices():
    x_emu = t(1, 2, 5, 5, dtype=np.float32, device="cuda-emu")
    w_cpu = t(3, 2, 3, 3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"conv2d: inputs are on different devices: input "
                                         r"\(1, 2, 5, 5\) on 'cuda-emu', weight \(3, 2, 3, 3\) "
                                         r"on 'cpu'"):
        F.conv2d(x_emu, w_cpu)
    y, indices = F.max_pool2d(t(1, 1, 4, 4, dtype=np.float32), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"max_unpool2d: inputs are on different devices: input "
                                         r"\(1, 1, 2, 2\) on 'cuda-emu', indices \(1, 1, 2, 2\) "
                                         r"on 'cpu'"):
        F.max_unpool2d(y.to("cuda-emu"), indices, 2)
    a_cpu, b_emu = t(2, dtype=np.float32), t(2, dtype=np.float32, device="cuda-emu")
    with pytest.raises(ValueError, match=r"add: inputs are on different devices \(\(2,\) on cpu, "
                                         r"\(2,\) on cuda-emu\)"):
        a_cpu + b_emu
    with pytest.raises(ValueError, match=r"matmul: inputs are on different devices"):
        a_cpu @ b_emu
    with pytest.raises(ValueError, match=r"stack: inputs are on different devices"):
        stack([a_cpu, b_emu])
    with pytest.raises(ValueError, match=r"mse_loss: inputs are on different devices: input "
                                         r"\(2,\) on 'cpu', target \(2,\) on 'cuda-emu'"):
        F.mse_loss(a_cpu, b_emu)


# ------------------------------------------------------------ tensor ops
def test_bad_reshape():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape \(2, 3\) \(6 elements\) to \(4,\)"):
        t(2, 3).reshape(4)


def test_bad_broadcast():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(2,\) cannot be broadcast"):
        t(2, 3) + t(2)


def test_bad_matmul():
    with pytest.raises(ValueError, match=r"matmul: inner sizes differ: \(2, 3\) @ \(2, 3\)"):
        t(2, 3) @ t(2, 3)


def test_bad_transpose_and_axis():
    with pytest.raises(ValueError, match=r"permute: axes \(0, 0\) are not a permutation"):
        t(2, 3).permute(0, 0)
    with pytest.raises(ValueError, match=r"transpose: axes 0 and 2 do not both exist .* \(2, 3\)"):
        t(2, 3).transpose(0, 2)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for a tensor with 2 dim"):
        t(2, 3).sum(axis=2)


def test_bad_concat_and_stack():
    with pytest.raises(ValueError, match=r"concat: shapes \[\(2, 3\), \(3, 2\)\] differ outside "
                                         r"axis 0"):
        concat([t(2, 3), t(3, 2)])
    with pytest.raises(ValueError, match=r"stack: all shapes must be equal"):
        stack([t(2), t(3)])


def test_backward_on_a_non_scalar():
    x = tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"backward: grad can be implicitly created only for "
                                           r"scalar outputs; this tensor has shape \(2, 3\)"):
        (x * 2).backward()


def test_reflection_pad_and_batch_norm_arguments():
    x = t(1, 2, 4, 4)
    assert F.reflection_pad2d(x, np.int64(1)).shape == (1, 2, 6, 6)
    with pytest.raises(ValueError, match=r"reflection_pad2d: padding must be an int or "
                                         r"\(left, right, top, bottom\), got \(1, 2\)"):
        F.reflection_pad2d(x, (1, 2))
    with pytest.raises(ValueError, match=r"batch_norm: give both running_mean and running_var"):
        F.batch_norm(x, running_mean=t(2), training=True)


def test_float64_on_a_kernel_device_asks_for_float():
    """The kernels are float32; the message names the argument and a method that exists."""
    x, w = t(1, 1, 4, 4, device="cuda-emu"), t(1, 1, 3, 3, device="cuda-emu")
    with pytest.raises(TypeError, match=r"conv2d: the cuda-emu kernels compute in float32 only, "
                       r"but input \(1, 1, 4, 4\) is float64; convert it with input.float\(\)"):  # fmt: skip
        F.conv2d(x, w)
    with pytest.raises(TypeError, match=r"max_pool2d: .* input \(1, 1, 4, 4\) is float64"):
        F.max_pool2d(x, 2)
    with pytest.raises(TypeError, match=r"unfold: .*float32 only.*input.float\(\)"):
        F.unfold(x, 2)
    assert x.float().dtype == np.float32 and x.float().device == "cuda-emu"
