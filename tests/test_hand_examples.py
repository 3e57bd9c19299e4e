"""Small examples you can check on paper: every expected number is written out,
with the arithmetic that produces it in a comment."""

import numpy as np

import minidl.functional as F
from minidl.tensor import tensor


def image(rows):
    """A (1, 1, H, W) float64 tensor from a list of rows."""
    return tensor(np.array(rows, dtype=np.float64)[None, None])


X = image([[1, 2, 3],
           [4, 5, 6],
           [7, 8, 9]])
K = image([[1, 2],
           [3, 4]])  # as a conv2d weight: (C_out=1, C_in=1, 2, 2)


def test_conv2d_3x3_input_2x2_kernel():
    # Slide the 2x2 kernel over the 3x3 input; multiply element by element, add up.
    # top-left:     1*1 + 2*2 + 4*3 + 5*4 = 1 + 4 + 12 + 20 = 37
    # top-right:    2*1 + 3*2 + 5*3 + 6*4 = 2 + 6 + 15 + 24 = 47
    # bottom-left:  4*1 + 5*2 + 7*3 + 8*4 = 4 + 10 + 21 + 32 = 67
    # bottom-right: 5*1 + 6*2 + 8*3 + 9*4 = 5 + 12 + 24 + 36 = 77
    y = F.conv2d(X, K)
    np.testing.assert_array_equal(y.data[0, 0], [[37, 47],
                                                 [67, 77]])


def test_conv2d_with_bias():
    # Every output gets the bias added: 37 + 10, 47 + 10, ...
    y = F.conv2d(X, K, tensor(np.array([10.0])))
    np.testing.assert_array_equal(y.data[0, 0], [[47, 57],
                                                 [77, 87]])


def test_conv2d_with_stride_and_padding():
    # padding=1 surrounds the input with zeros (5x5); stride=2 moves the kernel 2 at a time.
    #   0 0 0 0 0
    #   0 1 2 3 0      output size: (3 + 2*1 - 2) // 2 + 1 = 2
    #   0 4 5 6 0
    #   0 7 8 9 0
    #   0 0 0 0 0
    # (0,0): rows 0-1, cols 0-1 = [0 0; 0 1]  -> 1*4                   = 4
    # (0,1): rows 0-1, cols 2-3 = [0 0; 2 3]  -> 2*3 + 3*4             = 18
    # (1,0): rows 2-3, cols 0-1 = [0 4; 0 7]  -> 4*2 + 7*4             = 36
    # (1,1): rows 2-3, cols 2-3 = [5 6; 8 9]  -> 5*1 + 6*2 + 8*3 + 9*4 = 77
    y = F.conv2d(X, K, stride=2, padding=1)
    np.testing.assert_array_equal(y.data[0, 0], [[4, 18],
                                                 [36, 77]])


def test_conv_transpose2d_stride_2_stamps_the_kernel():
    # Each input pixel stamps a copy of the kernel, scaled by the pixel, into the
    # output; stride 2 places the stamps 2 apart, so these 2x2 stamps don't overlap.
    #   input [1 2; 3 4], kernel [1 2; 3 4]
    #   1*K = [1 2; 3 4]     2*K = [2 4; 6 8]
    #   3*K = [3 6; 9 12]    4*K = [4 8; 12 16]
    # output size: (2 - 1)*2 + (2 - 1) + 1 = 4
    x = image([[1, 2],
               [3, 4]])
    y = F.conv_transpose2d(x, K, stride=2)
    np.testing.assert_array_equal(y.data[0, 0], [[1, 2, 2, 4],
                                                 [3, 4, 6, 8],
                                                 [3, 6, 4, 8],
                                                 [9, 12, 12, 16]])


def test_conv_transpose2d_overlapping_stamps_add_up():
    # stride 1: the 2x2 stamps of a kernel of ones overlap and add.
    #   1 1 .     . 2 2     . . .     . . .       1  3  2
    #   1 1 .  +  . 2 2  +  3 3 .  +  . 4 4   =   4 10  6
    #   . . .     . . .     3 3 .     . 4 4       3  7  4
    x = image([[1, 2],
               [3, 4]])
    y = F.conv_transpose2d(x, image([[1, 1], [1, 1]]))
    np.testing.assert_array_equal(y.data[0, 0], [[1, 3, 2],
                                                 [4, 10, 6],
                                                 [3, 7, 4]])


POOL_INPUT = image([[1, 5, 2, 0],
                    [3, 4, 8, 1],
                    [9, 2, 6, 7],
                    [0, 1, 3, 5]])


def test_max_pool2d_4x4_with_indices():
    # Four 2x2 windows; the index is where the max sits in the 4x4 plane, row*4 + col.
    #   [1 5; 3 4] -> 5 at (0, 1) -> 0*4 + 1 = 1
    #   [2 0; 8 1] -> 8 at (1, 2) -> 1*4 + 2 = 6
    #   [9 2; 0 1] -> 9 at (2, 0) -> 2*4 + 0 = 8
    #   [6 7; 3 5] -> 7 at (2, 3) -> 2*4 + 3 = 11
    y, indices = F.max_pool2d(POOL_INPUT, 2, return_indices=True)
    np.testing.assert_array_equal(y.data[0, 0], [[5, 8],
                                                 [9, 7]])
    np.testing.assert_array_equal(indices.data[0, 0], [[1, 6],
                                                       [8, 11]])


def test_max_pool2d_gradient_goes_to_the_switches():
    # d(sum of the maxima)/dx is 1 where a max was taken, 0 elsewhere.
    x = tensor(POOL_INPUT.data, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 1, 0, 0],
                                                 [0, 0, 1, 0],
                                                 [1, 0, 0, 1],
                                                 [0, 0, 0, 0]])


def test_max_unpool2d_puts_the_maxima_back():
    # Each max returns to its switch (indices 1, 6, 8, 11); everything else is 0.
    y, indices = F.max_pool2d(POOL_INPUT, 2, return_indices=True)
    u = F.max_unpool2d(y, indices, 2)
    np.testing.assert_array_equal(u.data[0, 0], [[0, 5, 0, 0],
                                                 [0, 0, 8, 0],
                                                 [9, 0, 0, 7],
                                                 [0, 0, 0, 0]])


def test_avg_pool2d_with_padding_counts_the_padded_zeros():
    # kernel 3, stride 1, padding 1 on the 3x3 input: every window has 9 cells,
    # some of them padded zeros, and the divisor is always 9 (count_include_pad).
    #   corner (0,0): (1 + 2 + 4 + 5) / 9             = 12/9
    #   edge   (0,1): (1 + 2 + 3 + 4 + 5 + 6) / 9     = 21/9
    #   centre (1,1): (1 + 2 + ... + 9) / 9           = 45/9 = 5
    #   edge   (1,0): (1 + 2 + 4 + 5 + 7 + 8) / 9     = 27/9 = 3
    #   and likewise: (0,2) = (2+3+5+6)/9 = 16/9, (2,2) = (5+6+8+9)/9 = 28/9, ...
    y = F.avg_pool2d(X, 3, stride=1, padding=1)
    np.testing.assert_allclose(y.data[0, 0], np.array([[12, 21, 16],
                                                       [27, 45, 33],
                                                       [24, 39, 28]]) / 9)


def test_gram_matrix_of_a_2_channel_2x2_image():
    # Flatten each channel: F0 = [1 2 3 4], F1 = [0 1 1 0].
    #   F0·F0 = 1 + 4 + 9 + 16 = 30
    #   F0·F1 = 0 + 2 + 3 + 0  = 5
    #   F1·F1 = 0 + 1 + 1 + 0  = 2
    # divided by C*H*W = 2*2*2 = 8: [30 5; 5 2] / 8 = [3.75 0.625; 0.625 0.25]
    x = tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]],
                          [[0.0, 1.0], [1.0, 0.0]]]]))
    np.testing.assert_allclose(F.gram_matrix(x).data[0], [[3.75, 0.625],
                                                          [0.625, 0.25]])
