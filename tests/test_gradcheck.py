"""gradcheck itself: it must pass on correct ops and catch a wrong backward."""

import numpy as np
import pytest

from minidl.autograd import Function
from minidl.gradcheck import GradcheckError, gradcheck
from minidl.tensor import tensor


def rand(*shape, seed=0):
    return tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


class WrongSquare(Function):
    """x², with a backward that forgets the factor 2 -- except on element 0."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        grad = g * self.x  # wrong: should be 2·x·g
        grad.reshape(-1)[0] *= 2  # right on element 0 only
        return grad


class CorrectSquare(WrongSquare):
    def backward(self, g):
        return 2 * g * self.x


def test_passes_on_correct_ops():
    a, b = rand(2, 3, seed=1), rand(3, 2, seed=2)
    assert gradcheck(lambda a, b: (a @ b).exp(), [a, b])
    assert gradcheck(CorrectSquare.apply, [rand(4)])


def test_fails_on_a_wrong_backward_and_names_the_worst_element():
    x = tensor(np.array([[0.5, -1.0], [3.0, 0.25]]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSquare.apply, [x])
    message = str(info.value)
    # The error is largest where |x| is largest: x[1, 0] = 3.
    assert "input 0 (shape (2, 2)) at (1, 0)" in message
    assert "analytic" in message and "numerical" in message
    assert isinstance(info.value, AssertionError)  # pytest shows it as a failed assertion


def test_only_inputs_that_require_grad_are_checked():
    x = rand(3)
    constant = tensor(np.random.default_rng(5).standard_normal(3))  # no grad wanted
    assert gradcheck(lambda x, c: WrongSquare.apply(c) + x, [x, constant])
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda c, x: WrongSquare.apply(x) + c, [constant, x])


def test_inputs_are_restored_after_the_check():
    x = rand(2, 2)
    before = x.data.copy()
    gradcheck(lambda x: x * x, [x])
    np.testing.assert_array_equal(x.data, before)


def test_non_contiguous_input():
    # A transposed view: perturbing it must perturb the input, not a copy.
    x = rand(3, 4)
    x.data = x.data.T
    assert gradcheck(lambda x: x * x, [x])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(lambda x: x * 2, [tensor(np.ones(2))])
