"""PyTorch habits, written as a student coming from PyTorch writes them.

Each test is a small piece of everyday PyTorch code with ``torch`` replaced by
``minidl``; it asserts the result PyTorch would give.  Gradients are checked in
float64.
"""

import ast
import pathlib

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.gradcheck import gradcheck

f64 = minidl.float64


def linear_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = X @ np.array([[2.0], [-1.0], [0.5]]) + 0.3 + 0.01 * rng.standard_normal((n, 1))
    return X, y


# ---------------------------------------------------------------- training loops
def test_manual_sgd_fits_a_linear_regression_like_lstsq():
    X_np, y_np = linear_data()
    X, y = minidl.tensor(X_np, dtype=f64), minidl.tensor(y_np, dtype=f64)
    w = minidl.zeros(3, 1, dtype=f64, requires_grad=True)
    b = minidl.zeros(1, dtype=f64, requires_grad=True)
    w_id, lr = id(w), 0.1

    for _ in range(300):
        loss = ((X @ w + b - y) ** 2).mean()
        loss.backward()
        with minidl.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
            w.grad.zero_()
            b.grad.zero_()

    assert id(w) == w_id and w.is_leaf and w.requires_grad and b.requires_grad  # in place
    design = np.hstack([X_np, np.ones((len(X_np), 1))])
    solution = np.linalg.lstsq(design, y_np, rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), solution[:3], atol=1e-4)
    np.testing.assert_allclose(b.numpy(), solution[3], atol=1e-4)


def test_optimizer_loop_gives_the_same_weights_as_the_manual_loop():
    X_np, y_np = linear_data(seed=1)
    X, y = minidl.tensor(X_np, dtype=f64), minidl.tensor(y_np, dtype=f64)
    results = []
    for use_optimizer in (False, True):
        w = minidl.zeros((3, 1), dtype=f64, requires_grad=True)
        opt = optim.SGD([w], lr=0.05)
        for _ in range(20):
            if use_optimizer:
                opt.zero_grad()
            loss = ((X @ w - y) ** 2).mean()
            loss.backward()
            if use_optimizer:
                opt.step()
            else:
                with minidl.no_grad():
                    w.sub_(w.grad, alpha=0.05)
                    w.grad = None
        results.append(w.numpy().copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_accumulating_a_loss_with_plus_equals_keeps_the_graph():
    x = minidl.tensor([1.0, 2.0], dtype=f64, requires_grad=True)
    loss = 0
    for k in (1.0, 2.0, 3.0):
        loss += (k * x).sum()
    y = x * 2
    y += x  # in place on a tensor in the graph: recorded, as PyTorch does
    y *= x
    (loss + y.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 6.0 + 6 * x.numpy())


# ---------------------------------------------------------------- .grad
def test_grad_is_a_tensor_without_a_graph():
    x = minidl.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    assert isinstance(x.grad, minidl.Tensor) and not x.grad.requires_grad
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0, 6.0])
    np.testing.assert_array_equal(np.asarray(x.grad), [2.0, -4.0, 6.0])
    (x * x).sum().backward()  # gradients accumulate, as in PyTorch
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, -8.0, 12.0])
    g = x.grad
    x.grad.zero_()
    assert x.grad is g and x.grad.numpy().tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(TypeError, match="assign a Tensor"):
        x.grad = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="cannot be the gradient"):
        x.grad = minidl.zeros(2)


def test_builtin_abs_is_the_abs_method_with_its_gradient():
    x = minidl.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    y = abs(x)
    np.testing.assert_array_equal(y.numpy(), [2.0, 0.5, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 1.0, 1.0])


def test_relu_method_is_f_relu_with_its_gradient():
    x = minidl.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0])


def test_leaves_grad_fn_and_backward_with_a_gradient():
    x = minidl.tensor([1.0, 2.0], dtype=f64, requires_grad=True)
    y = x * x
    assert x.is_leaf and x.grad_fn is None and not y.is_leaf and y.grad_fn is not None
    y.backward(gradient=minidl.tensor([1.0, 10.0], dtype=f64))
    assert x.grad.numpy().tolist() == [2.0, 40.0]


# ---------------------------------------------------------------- in place
def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = minidl.ones(3, requires_grad=True)
    message = "a leaf Variable that requires grad is being used in an in-place operation"
    for update in (lambda: w.__isub__(1.0), lambda: w.zero_(), lambda: w.clamp_(0, 1),
                   lambda: w.mul_(2.0), lambda: w.copy_(minidl.zeros(3))):
        with pytest.raises(RuntimeError, match=message):
            update()
    np.testing.assert_array_equal(w.numpy(), [1.0, 1.0, 1.0])
    with minidl.no_grad():
        w.mul_(3.0).add_(minidl.ones(3), alpha=2.0).clamp_(max=4.0)
    np.testing.assert_array_equal(w.numpy(), [4.0, 4.0, 4.0])
    assert w.requires_grad and w.grad is None


def test_in_place_operators_keep_the_object_and_its_memory():
    x = minidl.arange(6).float().reshape(2, 3)
    data, before = x.data, id(x)
    x += 1
    x *= minidl.tensor([1.0, 2.0, 3.0])  # broadcasts into x
    x -= 1
    x /= 2
    assert id(x) == before and x.data is data
    np.testing.assert_allclose(x.numpy(), [[0.0, 1.5, 4.0], [1.5, 4.5, 8.5]])
    x.fill_(7.0)
    assert x.numpy().tolist() == [[7.0] * 3] * 2
    with pytest.raises(ValueError, match="cannot be written into"):
        x += minidl.ones(4, 2, 3)  # the result would be larger than x
    counts = minidl.arange(3)
    with pytest.raises(ValueError, match="int64"):
        counts /= 2  # int64 / int -> float64 does not fit an int64 tensor


def test_copy_converts_broadcasts_and_passes_the_gradient_to_the_source():
    src = minidl.tensor([1.0, 2.0, 3.0], dtype=f64, requires_grad=True)
    buffer = minidl.zeros(2, 3, dtype=f64)
    buffer.copy_(src)
    buffer.sum().backward()
    np.testing.assert_array_equal(src.grad.numpy(), [2.0, 2.0, 2.0])
    single = minidl.zeros(3)  # float32
    single.copy_(src.detach())
    assert single.dtype == np.float32 and single.numpy().tolist() == [1.0, 2.0, 3.0]
    elsewhere = minidl.zeros(3, device="cuda-emu").copy_(single * 2)  # across devices too
    assert elsewhere.device == "cuda-emu" and elsewhere.numpy().tolist() == [2.0, 4.0, 6.0]


def test_changing_a_saved_value_in_place_makes_backward_refuse():
    x = minidl.tensor([0.5, 1.0], dtype=f64, requires_grad=True)
    y = x.exp()  # exp saves its output for the backward pass
    with minidl.no_grad():
        y += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


# ---------------------------------------------------------------- constructors
def test_constructors_take_sizes_as_ints_or_a_tuple():
    for make in (minidl.zeros, minidl.ones, minidl.empty, minidl.rand, minidl.randn):
        assert make(2, 3).shape == make((2, 3)).shape == make([2, 3]).shape == (2, 3)
        assert make(2, dtype=f64).dtype == np.float64
    assert minidl.zeros(2, 2).numpy().sum() == 0 and minidl.ones(2, 2).numpy().sum() == 4
    assert minidl.full((2, 2), 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert minidl.zeros(()).shape == () and minidl.ones(0, 3).shape == (0, 3)
    w = minidl.randn(3, 4, requires_grad=True)
    assert w.requires_grad and w.dtype == np.float32
    r = minidl.rand(1000).numpy()
    assert r.min() >= 0 and r.max() < 1
    with pytest.raises(TypeError, match="size"):
        minidl.zeros(2, "cpu")


def test_arange_and_like_constructors():
    assert minidl.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert minidl.arange(5).dtype == np.int64
    assert minidl.arange(1, 7, 2).numpy().tolist() == [1, 3, 5]
    np.testing.assert_array_equal(minidl.arange(0, 1, 0.25).numpy(), [0, 0.25, 0.5, 0.75])
    assert minidl.arange(0, 1, 0.25).dtype == np.float32
    x = minidl.randn(2, 3, dtype=f64)
    for like, value in ((minidl.zeros_like, 0.0), (minidl.ones_like, 1.0)):
        y = like(x)
        assert y.shape == x.shape and y.dtype == np.float64 and (y.numpy() == value).all()
    assert minidl.zeros_like(x, dtype=np.float32).dtype == np.float32
    z = minidl.randn_like(x, requires_grad=True)
    assert z.shape == (2, 3) and z.dtype == np.float64 and z.requires_grad
    assert minidl.full_like(x, 2.5).numpy().tolist() == [[2.5] * 3] * 2


def test_manual_seed_makes_every_random_draw_repeat():
    def draw():
        return (minidl.randn(4).numpy(), minidl.rand(2, 2).numpy(),
                minidl.randn_like(minidl.zeros(3)).numpy(), nn.Conv2d(2, 3, 3).weight.numpy())

    minidl.manual_seed(123)
    first = draw()
    minidl.manual_seed(123)
    second = draw()
    third = draw()
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    # An explicit seed is its own stream, untouched by manual_seed.
    np.testing.assert_array_equal(minidl.randn(3, seed=5).numpy(), minidl.randn(3, seed=5).numpy())


# ---------------------------------------------------------------- methods
def test_size_numel_dim_item():
    x = minidl.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3 and x.shape == x.size()
    assert minidl.tensor([2.5]).item() == 2.5 and minidl.tensor(3.0).float().item() == 3.0
    with pytest.raises(ValueError, match="out of range"):
        x.size(3)


def rand64(*shape, seed=0):
    return minidl.tensor(np.random.default_rng(seed).uniform(0.5, 2.0, shape), requires_grad=True)


SHAPE_METHODS = {
    "clone": lambda x: x.clone() * x,
    "view": lambda x: x.view(3, 4) * 2,
    "view -1": lambda x: x.view(-1).pow(2),
    "flatten": lambda x: x.flatten(),
    "flatten 1..": lambda x: x.flatten(1) * x.flatten(1),
    "unsqueeze": lambda x: x.unsqueeze(0).unsqueeze(-1) ** 3,
    "squeeze": lambda x: x.reshape(1, 2, 1, 6).squeeze() * 5,
    "squeeze dim": lambda x: x.reshape(1, 2, 1, 6).squeeze(2).exp(),
    "expand": lambda x: x.reshape(2, 1, 6).expand(2, 3, -1) * minidl.arange(3).double().reshape(3, 1),
    "pow": lambda x: x.pow(2.5),
    "clamp": lambda x: x.clamp(min=0.8, max=1.7) * x,
    "clip": lambda x: x.clip(0.8) * x,
    "var": lambda x: x.var(),
    "var dim": lambda x: x.var(dim=1, keepdim=True),
    "var biased": lambda x: x.var(0, unbiased=False),
    "std": lambda x: x.std(dim=(0, 2), correction=0),
    "max dim": lambda x: x.max(dim=1).values * 2,
    "min": lambda x: x.min() + x.min(dim=0, keepdim=True)[0].sum(),
    "sum dim": lambda x: x.sum(dim=1, keepdim=True) * x,
    "mean axis alias": lambda x: x.mean(axis=(0, 1), keepdims=True) * x,
    "cat": lambda x: minidl.cat([x, x * 2], dim=2) ** 2,
    "to float64": lambda x: x.to(np.float64) * 2,
}


@pytest.mark.parametrize("name", SHAPE_METHODS)
def test_methods_have_correct_gradients(name):
    x = rand64(2, 2, 3, seed=len(name))
    assert gradcheck(SHAPE_METHODS[name], [x])


def test_methods_give_pytorchs_values():
    a = np.random.default_rng(3).standard_normal((2, 3, 4))
    x = minidl.tensor(a, dtype=f64)
    assert x.view(6, 4).shape == (6, 4) and x.flatten().shape == (24,)
    assert x.flatten(0, 1).shape == (6, 4) and x.unsqueeze(1).shape == (2, 1, 3, 4)
    assert x.unsqueeze(-1).shape == (2, 3, 4, 1) and minidl.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    assert minidl.zeros(3, 1).expand(2, 3, 4).shape == (2, 3, 4)
    np.testing.assert_allclose(x.var().item(), a.var(ddof=1))
    np.testing.assert_allclose(x.var(dim=2, correction=0).numpy(), a.var(axis=2))
    np.testing.assert_allclose(x.std(1).numpy(), a.std(axis=1, ddof=1))
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.numpy(), a.max(axis=1))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(axis=1))
    assert x.min(2).indices.dtype == np.int64
    np.testing.assert_array_equal(x.min(dim=2).values.numpy(), a.min(axis=2))
    assert x.argmax().item() == a.argmax() and x.argmin(dim=0).shape == (3, 4)
    assert x.argmax(dim=1, keepdim=True).shape == (2, 1, 4)
    np.testing.assert_array_equal(x.amax(dim=(0, 2)).numpy(), a.max(axis=(0, 2)))
    np.testing.assert_allclose(x.sum(dim=1).numpy(), x.sum(axis=1).numpy())
    np.testing.assert_allclose(x.clamp(-0.5, 0.5).numpy(), np.clip(a, -0.5, 0.5))
    assert minidl.cat([x, x], dim=0).shape == (4, 3, 4)
    assert x.float().dtype == np.float32 and x.float().double().dtype == np.float64
    assert x.to(np.float32).dtype == np.float32 and x.to("cpu") is x
    assert minidl.tensor([1.5, 2.7]).to(minidl.int64).numpy().tolist() == [1, 2]


def test_view_of_a_non_contiguous_tensor_is_refused_and_views_share_memory():
    x = minidl.arange(6).float().reshape(2, 3)
    with pytest.raises(ValueError, match="not contiguous.*reshape"):
        x.T.view(6)
    assert x.T.reshape(6).numpy().tolist() == [0, 3, 1, 4, 2, 5]
    assert x.T.contiguous().view(6).numpy().tolist() == [0, 3, 1, 4, 2, 5]
    flat = x.view(6)
    flat += 1  # a view shares memory, as in PyTorch
    assert x.numpy().tolist() == [[1, 2, 3], [4, 5, 6]]


def test_float_conversion_passes_the_gradient_back_in_the_original_dtype():
    x = minidl.tensor([1.0, 2.0], dtype=f64, requires_grad=True)
    (x.float() * 3).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.numpy().tolist() == [3.0, 3.0]


# ---------------------------------------------------------------- gradcheck
def test_gradcheck_leaves_every_grad_alone():
    x = rand64(3)
    weight = rand64(3, seed=1)  # used by fn but not passed: PyTorch leaves it alone too
    x.grad = minidl.full((3,), 5.0, dtype=f64)
    assert gradcheck(lambda x: (x * weight).exp(), [x])
    assert x.grad.numpy().tolist() == [5.0, 5.0, 5.0] and weight.grad is None


# ---------------------------------------------------------------- L-BFGS
def quadratic(target, scale=None):
    """x, and a closure for sum(scale * (x - target)²)."""
    target = np.asarray(target, dtype=np.float64)
    scale = np.ones_like(target) if scale is None else np.asarray(scale, dtype=np.float64)
    x = minidl.zeros(len(target), dtype=f64, requires_grad=True)

    def closure():
        x.grad = None
        loss = (minidl.tensor(scale) * (x - minidl.tensor(target)) ** 2).sum()
        loss.backward()
        return loss

    return x, closure


def test_lbfgs_says_it_converged_on_the_gradient():
    x, closure = quadratic([1.0, -2.0])
    opt = optim.LBFGS([x], max_iter=50, line_search_fn="strong_wolfe")
    assert opt.stop_reason is None
    opt.step(closure)
    assert opt.stop_reason == "converged: gradient"
    np.testing.assert_allclose(x.numpy(), [1.0, -2.0], atol=1e-7)
    opt.step(closure)  # already there: stops before the first iteration
    assert opt.stop_reason == "converged: gradient"


def test_lbfgs_says_it_converged_on_a_small_change():
    x, closure = quadratic([1.0, -2.0, 3.0], scale=[1.0, 10.0, 100.0])
    opt = optim.LBFGS([x], max_iter=100, tolerance_grad=1e-30, tolerance_change=1e-2)
    opt.step(closure)
    assert opt.stop_reason == "converged: change in loss/parameters"
    assert opt.iterations < 100


def test_lbfgs_says_it_ran_out_of_iterations():
    x, closure = quadratic([1.0, -2.0, 3.0], scale=[1.0, 10.0, 100.0])
    opt = optim.LBFGS([x], max_iter=2)
    opt.step(closure)
    assert opt.stop_reason == "max_iter" and opt.iterations == 2


def test_lbfgs_says_its_line_search_failed_on_a_wrong_gradient():
    x = minidl.tensor([1.0, 2.0], dtype=f64, requires_grad=True)

    def closure():  # the loss is sum(x²), but the "gradient" points uphill
        loss = (x * x).sum()
        x.grad = -2 * x.detach()
        return loss

    opt = optim.LBFGS([x], max_iter=10, line_search_fn="strong_wolfe")
    opt.step(closure)
    assert opt.stop_reason == "line search failed"
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])  # left where the step began


# ---------------------------------------------------------------- layering
def minidl_imports(path: pathlib.Path, top_level_only: bool) -> set:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minidl"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("minidl"))
    return names


def test_autograd_tensor_and_tensor_ops_import_in_one_direction():
    package = pathlib.Path(minidl.__file__).parent
    assert minidl_imports(package / "autograd.py", top_level_only=False) == set()
    assert "minidl.tensor_ops" not in minidl_imports(package / "tensor.py", top_level_only=True)
    assert {"minidl.autograd", "minidl.tensor"} <= minidl_imports(package / "tensor_ops.py", True)
