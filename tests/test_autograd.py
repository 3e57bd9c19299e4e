"""Tensor operators and the autograd engine.

Every differentiable operator is checked against central differences
(``gradcheck``, float64); the rest checks the engine itself: shared
subexpressions, accumulation, no_grad, retain_graph, very long chains.
"""

import numpy as np
import pytest

from minidl.autograd import no_grad
from minidl.creation import ones, randn, zeros
from minidl.gradcheck import gradcheck
from minidl.tensor import Tensor, tensor
from minidl.tensor_ops import concat, stack


def rand(*shape, seed=0, low=-1.0, high=1.0):
    """A float64 leaf tensor with uniform random values that requires grad."""
    data = np.random.default_rng(seed).uniform(low, high, size=shape)
    return tensor(data, requires_grad=True)


# ------------------------------------------------------------ binary operators
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
# (shape of a, shape of b): equal shapes, then broadcasting both ways.
BROADCAST_SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1, 3), (2, 1)), ((), (2, 2)), ((1,), (3, 1))]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
def test_binary_operator_gradients_with_broadcasting(name, shapes):
    a = rand(*shapes[0], seed=1)
    b = rand(*shapes[1], seed=2, low=0.5, high=2.0)  # away from 0 for division
    out = BINARY[name](a, b)
    assert out.shape == np.broadcast_shapes(*shapes)
    assert gradcheck(BINARY[name], [a, b])
    # Backward of broadcasting is a sum: each input's grad has the input's shape.
    BINARY[name](a, b).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape


def test_broadcast_gradient_is_a_sum_over_the_stretched_axes():
    a = rand(2, 3)
    b = rand(3)
    (a * b).sum().backward()
    np.testing.assert_allclose(b.grad, a.data.sum(axis=0))
    np.testing.assert_allclose(a.grad, np.broadcast_to(b.data, (2, 3)))


@pytest.mark.parametrize("scalar", [2.0, np.float64(2.0), 3])
def test_python_and_numpy_scalars_on_either_side(scalar):
    a = rand(2, 2, low=0.5, high=1.5)
    for fn in (lambda a: scalar + a, lambda a: a - scalar, lambda a: scalar - a,
               lambda a: scalar * a, lambda a: scalar / a, lambda a: a / scalar):
        out = fn(a)
        assert isinstance(out, Tensor) and out.dtype == np.float64
        assert gradcheck(fn, [a])


def test_power_both_ways():
    a = rand(2, 3, low=0.5, high=2.0)
    b = rand(2, 3, seed=3)
    assert gradcheck(lambda a, b: a**b, [a, b])
    assert gradcheck(lambda a: a**3, [rand(2, 3)])
    assert gradcheck(lambda a: a**-0.5, [a])
    assert gradcheck(lambda b: 2.0**b, [b])


def test_unary_negation():
    assert gradcheck(lambda a: -a, [rand(3, 2)])


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((3, 4), (4, 2)),  # matrix @ matrix
        ((2, 3, 4), (2, 4, 5)),  # batched
        ((2, 3, 4), (4, 5)),  # batched @ broadcast matrix
        ((3, 4), (2, 4, 5)),  # matrix broadcast over b's batch
        ((2, 1, 3, 4), (5, 4, 2)),  # batch axes broadcast against each other
        ((4,), (4, 3)),  # vector @ matrix
        ((3, 4), (4,)),  # matrix @ vector
        ((4,), (2, 4, 3)),  # vector @ batched
        ((2, 3, 4), (4,)),  # batched @ vector
        ((4,), (4,)),  # dot product -> scalar
    ],
)
def test_matmul_gradients(shape_a, shape_b):
    a, b = rand(*shape_a, seed=4), rand(*shape_b, seed=5)
    out = a @ b
    np.testing.assert_allclose(out.data, a.data @ b.data)
    assert gradcheck(lambda a, b: a @ b, [a, b])


def test_matmul_with_a_numpy_array_on_the_left():
    b = rand(3, 2)
    m = np.arange(6.0).reshape(2, 3)
    out = m @ b  # numpy defers to Tensor.__rmatmul__
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, m @ b.data)


def test_truth_value_only_for_one_element():
    assert tensor([2.0]) > 1
    assert not tensor(0.0)
    with pytest.raises(ValueError, match=r"bool: the truth value of a tensor of shape \(2,\)"):
        bool(tensor([1.0, 2.0]) == 1)


def test_comparisons_give_bool_tensors_without_grad():
    a = tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    results = [a < 2, a <= 2, a > 2, a >= 2, a == 2, a != 2, a > tensor(np.array([0.0, 5.0, 1.0]))]
    for r in results:
        assert r.dtype == bool and not r.requires_grad and r.creator is None
    assert (a < 2).data.tolist() == [True, False, False]
    assert (a == 2).data.tolist() == [False, True, False]
    assert results[-1].data.tolist() == [True, False, True]


# ------------------------------------------------------------ reductions
@pytest.mark.parametrize("method", ["sum", "mean", "amax"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(method, axis, keepdims):
    a = rand(2, 3, 4, seed=6)  # continuous random values: no ties for max
    out = getattr(a, method)(axis=axis, keepdims=keepdims)
    expected = getattr(np, {"sum": "sum", "mean": "mean", "amax": "max"}[method])(
        a.data, axis=axis, keepdims=keepdims
    )
    np.testing.assert_allclose(out.data, expected)
    assert out.shape == np.shape(expected)
    assert gradcheck(lambda a: getattr(a, method)(axis=axis, keepdims=keepdims), [a])


def test_max_shares_the_gradient_between_ties():
    a = tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    a.max().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.5, 0.5])


# ------------------------------------------------------------ shapes and indexing
def test_reshape():
    a = rand(2, 3, 4)
    assert a.reshape(6, 4).shape == (6, 4)
    assert a.reshape((4, -1)).shape == (4, 6)
    assert gradcheck(lambda a: a.reshape(3, 8), [a])


@pytest.mark.parametrize("axes", [((2, 0, 1),), (1, 0, 2), ((0, -1, 1),)])
def test_permute(axes):
    a = rand(2, 3, 4)
    out = a.permute(*axes)
    np.testing.assert_array_equal(out.data, a.data.transpose(*axes))
    assert gradcheck(lambda a: a.permute(*axes), [a])


@pytest.mark.parametrize("dims, shape", [((0, 1), (3, 2, 4)), ((1, 2), (2, 4, 3)), ((-1, 0), (4, 3, 2))])
def test_transpose_swaps_two_axes_as_in_pytorch(dims, shape):
    a = rand(2, 3, 4)
    out = a.transpose(*dims)
    assert out.shape == shape
    np.testing.assert_array_equal(out.data, np.swapaxes(a.data, *dims))
    assert gradcheck(lambda a: a.transpose(*dims), [a])


def test_T_reverses_axes():
    a = rand(2, 3)
    assert a.T.shape == (3, 2)
    assert gradcheck(lambda a: a.T * tensor(np.arange(6.0).reshape(3, 2)), [a])


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        slice(1, None),
        (slice(None), 2),
        (Ellipsis, slice(None, None, -2)),
        (slice(0, 2), None, slice(1, 3)),
        np.array([2, 0, 2, 2]),  # repeated rows: gradients must add up
        (np.array([0, 1, 1]), np.array([3, 2, 2])),  # repeated element (1, 2)
        (slice(None), [1, 1, 0]),
    ],
)
def test_getitem(index):
    a = rand(3, 4)
    out = a[index]
    np.testing.assert_array_equal(out.data, a.data[index])
    assert gradcheck(lambda a: a[index], [a])


def test_getitem_scatter_adds_repeated_indices():
    a = tensor(np.zeros(3), requires_grad=True)
    a[np.array([0, 2, 2, 2])].sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 3.0])


def test_getitem_with_a_tensor_index():
    a = rand(4)
    idx = tensor(np.array([3, 3, 1]))
    assert idx.dtype == np.int64
    a[idx].sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 1.0, 0.0, 2.0])


def test_getitem_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"getitem: .*shape \(3, 4\)"):
        rand(3, 4)[5]


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = {0: [(1, 3), (2, 3), (3, 3)], 1: [(2, 1), (2, 4), (2, 2)], -1: [(2, 1), (2, 4), (2, 2)]}
    parts = [rand(*s, seed=i) for i, s in enumerate(shapes[axis])]
    out = concat(parts, axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate([p.data for p in parts], axis=axis))
    assert gradcheck(lambda *ps: concat(ps, axis=axis), parts)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    parts = [rand(2, 3, seed=i) for i in range(3)]
    out = stack(parts, axis=axis)
    np.testing.assert_array_equal(out.data, np.stack([p.data for p in parts], axis=axis))
    assert gradcheck(lambda *ps: stack(ps, axis=axis), parts)


# ------------------------------------------------------------ elementwise math
def test_clip():
    # Values kept away from the bounds: the clip gradient is not defined exactly there.
    a = tensor(np.array([-2.0, -0.7, -0.2, 0.3, 0.8, 1.7]), requires_grad=True)
    assert gradcheck(lambda a: a.clip(-0.5, 0.5), [a])
    assert gradcheck(lambda a: a.clip(min=0.0), [a])
    assert gradcheck(lambda a: a.clip(max=0.0), [a])
    a.grad = None
    a.clip(-0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(a.grad, [0, 0, 1, 1, 0, 0])


@pytest.mark.parametrize("method", ["exp", "log", "sqrt", "abs"])
def test_elementwise_math(method):
    positive = method in ("log", "sqrt")
    a = rand(3, 4, low=0.2 if positive else -2.0, high=2.0)
    if method == "abs":  # keep away from the kink at 0
        a.data[np.abs(a.data) < 0.1] = 0.5
    np.testing.assert_allclose(getattr(a, method)().data, getattr(np, method)(a.data))
    assert gradcheck(lambda a: getattr(a, method)(), [a])


def test_composite_expression():
    x, w = rand(4, 3, seed=1), rand(3, 2, seed=2)
    b = rand(2, seed=3)

    def f(x, w, b):
        h = (x @ w + b).exp()
        return (h / h.sum(axis=1, keepdims=True)).log().mean(axis=0)

    assert gradcheck(f, [x, w, b])


# ------------------------------------------------------------ the engine
def test_shared_subexpression_gets_both_contributions():
    x = tensor(np.array([3.0]), requires_grad=True)
    y = x * x + x  # x used three times: dy/dx = 2x + 1 = 7
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [7.0])
    a = rand(2, 2)
    assert gradcheck(lambda a: (a * a) * (a * a) + a.exp() * a, [a])


def test_diamond_graph():
    # x -> h -> (exp(h), h) -> product: two paths from h meet again.
    def f(x):
        h = x * 2.0
        return h.exp() * h

    assert gradcheck(f, [rand(3)])


def test_gradients_accumulate_over_two_backward_calls():
    x = tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.zero_grad()
    assert x.grad is None


def test_no_grad_records_nothing():
    x = rand(3)
    with no_grad():
        y = (x * 2).exp().sum()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    z = (x * 2).sum()  # recording is back on after the block
    assert z.requires_grad and z.creator is not None


def test_no_grad_restores_state_after_an_exception():
    x = rand(2)
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError("something failed inside the block")
    assert (x * 2).requires_grad


def test_retain_graph_allows_a_second_backward():
    x = tensor(np.array([2.0]), requires_grad=True)
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [2 * 3 * 4.0])  # twice 3x² at x = 2


def test_second_backward_without_retain_graph_is_a_clear_error():
    x = tensor(np.array([2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed.*retain_graph=True"):
        y.backward()


def test_a_chain_of_10000_ops_has_no_recursion_error():
    x = tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])
    assert y.item() == 10_001.0


def test_backward_on_a_non_scalar_without_grad_is_an_error():
    y = rand(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*shape \(2, 3\)"):
        y.backward()


def test_backward_with_an_explicit_grad():
    x = rand(2, 3)
    y = x * 2
    y.backward(np.ones((2, 3)) * 5)
    np.testing.assert_allclose(x.grad, np.full((2, 3), 10.0))
    with pytest.raises(ValueError, match=r"backward: grad has shape \(3,\) but the tensor has \(2, 3\)"):
        (x * 2).backward(np.ones(3))


def test_leaf_that_is_not_used_gets_no_grad():
    x, unused = rand(2), rand(2)
    (x * 2).sum().backward()
    assert unused.grad is None


# ------------------------------------------------------------ tensor basics
def test_to_cpu_is_the_same_tensor_and_round_trip_via_emulator_copies():
    x = rand(2, 2)
    assert x.to("cpu") is x
    moved = x.to("cuda-emu")
    assert moved.device == "cuda-emu" and moved.data is not x.data
    back = moved.to("cpu")
    np.testing.assert_array_equal(back.data, x.data)
    (back * 3.0).sum().backward()  # gradients flow back across devices
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 3.0))


def test_detach_shares_data_but_not_the_graph():
    x = rand(3)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.creator is None
    assert d.data is y.data


def test_item():
    assert tensor(np.array([[2.5]])).item() == 2.5
    assert isinstance(tensor(3.0).item(), float)
    assert float(tensor(np.array([1.5]))) == 1.5
    with pytest.raises(ValueError, match=r"item: tensor of shape \(2,\) has 2 elements"):
        tensor([1.0, 2.0]).item()


def test_tensor_dtype_rules():
    assert tensor([1, 2, 3]).dtype == np.float32  # Python lists -> float32
    assert tensor(2).dtype == np.float32
    assert tensor(np.zeros(2)).dtype == np.float64  # numpy keeps float64
    assert tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert tensor(np.arange(3)).dtype == np.arange(3).dtype  # integers stay integers
    assert tensor(np.array([True])).dtype == bool
    assert tensor(np.float64(1.0)).dtype == np.float64  # numpy scalars keep theirs too
    assert tensor(np.zeros(2, np.float16)).dtype == np.float32  # other floats -> float32
    assert tensor([1, 2], dtype=np.float64).dtype == np.float64
    data = np.ones(2)
    t = tensor(data)
    data[0] = 5.0
    assert t.data[0] == 1.0  # tensor() copies
    with pytest.raises(TypeError, match="only float32/float64 tensors can require grad"):
        tensor(np.arange(3), requires_grad=True)


def test_factories():
    assert zeros((2, 3)).dtype == np.float32 and zeros((2, 3)).data.sum() == 0
    assert ones(4, dtype=np.float64).data.sum() == 4.0
    a, b = randn(2, 3, seed=1), randn(2, 3, seed=1)
    np.testing.assert_array_equal(a.data, b.data)
    assert randn(2, device="cuda-emu").device == "cuda-emu"


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        tensor([1.0], device="gpu")


def test_the_graph_keeps_no_intermediate_tensor_alive():
    import gc
    import weakref

    x = tensor(np.ones(3), requires_grad=True)
    h = x * 2  # an intermediate result; Exp below saves its own output, not h
    alive = weakref.ref(h)
    y = h.exp().sum()
    del h
    gc.collect()
    assert alive() is None
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(2) * np.ones(3), rtol=1e-6)


def test_top_level_names_as_in_pytorch():
    import minidl

    x = minidl.tensor([[1.0, 2.0]], requires_grad=True)
    assert isinstance(x, minidl.Tensor) and x.dtype == np.float32
    with minidl.no_grad():
        assert not (x * 2).requires_grad and not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()
    assert minidl.stack([x, x]).shape == (2, 1, 2) and minidl.concat([x, x]).shape == (2, 2)
    assert minidl.zeros((2,)).shape == minidl.ones((2,)).shape == (2,)
    assert minidl.randn(2, 3, seed=0).shape == (2, 3)
    assert minidl.gradcheck(lambda t: (t * t).sum(), [minidl.tensor([1.0, 2.0], dtype="float64",
                                                                     requires_grad=True)])


# ------------------------------------------------------------ dtypes and edge cases
def test_float32_gradients_stay_float32_through_max_and_accumulation():
    a = tensor(np.array([1.0, 3.0, 3.0], np.float32), requires_grad=True)
    (a.max() + a.max()).backward()  # ties share the gradient; two contributions add up
    assert a.grad.dtype == np.float32
    np.testing.assert_array_equal(a.grad, [0, 1, 1])


def test_leaf_gradient_of_a_0d_tensor_is_an_array():
    a = tensor(np.float64(2.0), requires_grad=True)
    (a * a).backward()
    assert isinstance(a.grad, Tensor) and isinstance(a.grad.data, np.ndarray)
    assert a.grad.shape == () and a.grad.item() == 4 and not a.grad.requires_grad


def test_a_float_scalar_does_not_silently_truncate_an_integer_tensor():
    ints = tensor(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match=r"float value 0.5 cannot be combined with an integer"):
        ints * 0.5
    np.testing.assert_array_equal((ints * 2).numpy(), [2, 4, 6])


def test_power_zero_has_zero_gradient_even_at_zero():
    a = tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    (a**0).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 0.0])


def test_concat_and_stack_reject_axes_out_of_range():
    a = rand(2, 3)
    with pytest.raises(ValueError, match=r"concat: axis 2 is out of range for a tensor with 2"):
        concat([a, a], axis=2)
    with pytest.raises(ValueError, match=r"stack: axis 5 is out of range for a tensor with 3"):
        stack([a, a], axis=5)
    assert stack([a, a], axis=-1).shape == (2, 3, 2)


def test_slicing_gradient_is_a_plain_add():
    a = rand(3, 4)
    assert gradcheck(lambda a: a[1:, ::2] * a[:-1, 1::2], [a])
    assert gradcheck(lambda a: a[-1] + a[0, ...], [a])


def test_tensor_refuses_an_array_of_another_device():
    with pytest.raises(TypeError, match=r"a numpy array cannot live on device 'cuda'"):
        Tensor(np.ones(3), device="cuda")
    with pytest.raises(TypeError, match=r"a list array cannot live on device 'cpu'"):
        Tensor([1.0, 2.0], device="cpu")


def test_boolean_mask_indexing():
    a = tensor(np.array([1.0, -2.0, 3.0, -4.0]), requires_grad=True)
    picked = a[a > 0]
    np.testing.assert_array_equal(picked.numpy(), [1.0, 3.0])
    (picked * picked).sum().backward()
    np.testing.assert_array_equal(a.grad, [2.0, 0.0, 6.0, 0.0])
