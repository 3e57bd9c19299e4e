"""Optimisers: hand-computed steps, Rosenbrock's valley, and least squares."""

import numpy as np
import pytest

from minidl.optim import LBFGS, SGD, Adam
from minidl.tensor import tensor
from minidl.tensor_ops import concat


def rosenbrock(p):
    """f(x, y) = (1 - x)² + 100 (y - x²)²: minimum 0 at (1, 1), in a curved, flat valley."""
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def start():
    return tensor(np.array([-1.5, 2.0]), requires_grad=True)


def minimise(optimizer, params, loss_fn, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(*params).backward()
        optimizer.step()


def minimise_lbfgs(optimizer, params, loss_fn, steps):
    def closure():
        optimizer.zero_grad()
        loss = loss_fn(*params)
        loss.backward()
        return loss.item()

    for _ in range(steps):
        optimizer.step(closure)


# ------------------------------------------------------------ Rosenbrock
@pytest.mark.parametrize(
    "make, steps",
    [
        (lambda ps: SGD(ps, lr=1e-3, momentum=0.9), 5000),
        (lambda ps: Adam(ps, lr=0.05), 3000),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_first_order_optimisers_on_rosenbrock(make, steps):
    p = start()
    minimise(make([p]), [p], rosenbrock, steps)
    np.testing.assert_allclose(p.data, [1.0, 1.0], atol=1e-4)


@pytest.mark.parametrize("line_search_fn, lr, steps", [(None, 0.1, 50), ("strong_wolfe", 1.0, 5)])
def test_lbfgs_on_rosenbrock(line_search_fn, lr, steps):
    p = start()
    optimizer = LBFGS([p], lr=lr, max_iter=200, line_search_fn=line_search_fn)
    minimise_lbfgs(optimizer, [p], rosenbrock, steps)
    np.testing.assert_allclose(p.data, [1.0, 1.0], atol=1e-4)
    if line_search_fn:  # the line search is what makes L-BFGS cheap here
        assert optimizer.function_evaluations < 150


# ------------------------------------------------------------ least squares
RNG = np.random.default_rng(0)
A = RNG.standard_normal((20, 5))
B = RNG.standard_normal(20)
SOLUTION = np.linalg.lstsq(A, B, rcond=None)[0]


def least_squares(x):
    """mean((A x - b)²); its gradient is (2/20)·Aᵀ(A x - b)."""
    r = tensor(A) @ x - tensor(B)
    return (r * r).mean()


@pytest.mark.parametrize(
    "make, steps",
    [
        (lambda ps: SGD(ps, lr=0.1), 2000),
        (lambda ps: SGD(ps, lr=0.05, momentum=0.9), 500),
        (lambda ps: Adam(ps, lr=0.05), 2000),
    ],
    ids=["sgd", "sgd-momentum", "adam"],
)
def test_first_order_optimisers_solve_least_squares(make, steps):
    x = tensor(np.zeros(5), requires_grad=True)
    minimise(make([x]), [x], least_squares, steps)
    np.testing.assert_allclose(x.data, SOLUTION, atol=1e-6)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_solves_least_squares(line_search_fn):
    x = tensor(np.zeros(5), requires_grad=True)
    optimizer = LBFGS([x], max_iter=50, line_search_fn=line_search_fn)
    minimise_lbfgs(optimizer, [x], least_squares, 1)
    # The default tolerances (as PyTorch's) stop once the loss changes by < 1e-9,
    # which here is about 1e-6 away from the solution ...
    np.testing.assert_allclose(x.data, SOLUTION, atol=1e-5)
    # ... and tighter tolerances go on to the solution itself.
    x = tensor(np.zeros(5), requires_grad=True)
    optimizer = LBFGS([x], max_iter=50, line_search_fn=line_search_fn,
                      tolerance_grad=1e-12, tolerance_change=1e-20)
    minimise_lbfgs(optimizer, [x], least_squares, 1)
    np.testing.assert_allclose(x.data, SOLUTION, atol=1e-9)
    assert optimizer.iterations <= 20  # 5 unknowns: a quadratic is solved in a few steps


def test_sgd_weight_decay_reaches_the_ridge_solution():
    # loss + (wd/2)|x|² has gradient (2/n)Aᵀ(Ax - b) + wd·x = 0
    #   =>  ((2/n) AᵀA + wd·I) x = (2/n) Aᵀb
    wd, n = 0.5, len(B)
    ridge = np.linalg.solve(2 / n * A.T @ A + wd * np.eye(5), 2 / n * A.T @ B)
    x = tensor(np.zeros(5), requires_grad=True)
    minimise(SGD([x], lr=0.05, momentum=0.9, weight_decay=wd), [x], least_squares, 500)
    np.testing.assert_allclose(x.data, ridge, atol=1e-6)
    assert not np.allclose(ridge, SOLUTION, atol=1e-2)  # weight decay made a difference


def test_parameters_spread_over_several_tensors():
    # The same problem with x split into two parameters, for every optimiser.
    def loss(x1, x2):
        return least_squares(concat([x1, x2.reshape(3)]))

    for make in (lambda ps: SGD(ps, lr=0.05, momentum=0.9), lambda ps: Adam(ps, lr=0.05),
                 lambda ps: LBFGS(ps, max_iter=100, line_search_fn="strong_wolfe")):
        x1 = tensor(np.zeros(2), requires_grad=True)
        x2 = tensor(np.zeros((3, 1)), requires_grad=True)

        optimizer = make([x1, x2])
        if isinstance(optimizer, LBFGS):
            minimise_lbfgs(optimizer, [x1, x2], loss, 1)
        else:
            minimise(optimizer, [x1, x2], loss, 1000)
        np.testing.assert_allclose(np.concatenate([x1.data, x2.data[:, 0]]), SOLUTION, atol=1e-5)


# ------------------------------------------------------------ single steps by hand
def test_sgd_steps_equal_the_hand_formula():
    # PyTorch's SGD:  g ← grad + wd·w;  v ← μ·v + g (v = g on the first step);  w ← w − lr·v
    lr, mu, wd = 0.1, 0.9, 0.01
    w = tensor(np.array([1.0, -2.0]), requires_grad=True)
    optimizer = SGD([w], lr=lr, momentum=mu, weight_decay=wd)

    # step 1: loss = sum(w²), grad = 2w = [2, -4]
    (w * w).sum().backward()
    optimizer.step()
    # g  = [2, -4] + 0.01·[1, -2]     = [2.01, -4.02]
    # v  = g                          = [2.01, -4.02]
    # w  = [1, -2] − 0.1·v            = [0.799, -1.598]
    np.testing.assert_allclose(w.data, [0.799, -1.598])

    # step 2: loss = sum(3w), grad = [3, 3]
    optimizer.zero_grad()
    (w * 3.0).sum().backward()
    optimizer.step()
    # g  = [3, 3] + 0.01·[0.799, -1.598]       = [3.00799, 2.98402]
    # v  = 0.9·[2.01, -4.02] + g               = [4.81699, -0.63398]
    # w  = [0.799, -1.598] − 0.1·v             = [0.3173010, -1.5346020]
    np.testing.assert_allclose(w.data, [0.317301, -1.534602])


def test_plain_sgd_step():
    w = tensor(np.array([3.0]), requires_grad=True)
    optimizer = SGD([w], lr=0.25)
    (w * w).sum().backward()  # grad 6
    optimizer.step()
    np.testing.assert_allclose(w.data, [3.0 - 0.25 * 6])  # 1.5


def test_adam_first_step_is_lr_times_the_sign():
    # Step 1: m̂ = g and v̂ = g² after bias correction, so the step is lr·g/(|g| + eps).
    w = tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    optimizer = Adam([w], lr=0.1)
    (w * tensor(np.array([3.0, 0.01, -50.0]))).sum().backward()
    optimizer.step()
    np.testing.assert_allclose(w.data, [1.0 - 0.1, -2.0 - 0.1, 0.5 + 0.1], rtol=1e-6)


def test_parameters_without_grad_are_left_alone():
    used, unused = tensor(np.ones(2), requires_grad=True), tensor(np.ones(2), requires_grad=True)
    for optimizer in (SGD([used, unused], lr=0.1, momentum=0.9), Adam([used, unused])):
        used.grad = unused.grad = None
        (used * used).sum().backward()
        optimizer.step()
        np.testing.assert_array_equal(unused.data, [1.0, 1.0])


# ------------------------------------------------------------ L-BFGS details
@pytest.mark.parametrize("history_size", [1, 3])
def test_lbfgs_history_size_is_respected(history_size):
    p = start()
    optimizer = LBFGS([p], lr=1.0, max_iter=30, history_size=history_size,
                      line_search_fn="strong_wolfe")
    lengths = []

    def closure():
        optimizer.zero_grad()
        loss = rosenbrock(p)
        loss.backward()
        lengths.append(len(optimizer.steps))
        return loss.item()

    optimizer.step(closure)
    assert optimizer.iterations > history_size + 1
    assert max(lengths) == history_size  # filled up, never beyond
    assert len(optimizer.steps) == len(optimizer.grads_diff) == len(optimizer.rho) == history_size


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_max_iter_and_the_returned_loss(line_search_fn):
    p = start()
    optimizer = LBFGS([p], max_iter=3, line_search_fn=line_search_fn)
    losses = []

    def closure():
        optimizer.zero_grad()
        loss = rosenbrock(p)
        loss.backward()
        losses.append(loss.item())
        return loss.item()

    first = optimizer.step(closure)
    assert first == losses[0] == 12.5  # the loss before the step: (1+1.5)² + 100(2-2.25)²
    assert optimizer.iterations == 3
    if line_search_fn is None:
        assert optimizer.function_evaluations == 1 + 3  # one evaluation per iteration
    else:
        # Each accepted step satisfies sufficient decrease, so the loss went down.
        assert rosenbrock(p).item() < first


def test_lbfgs_closure_may_return_the_loss_tensor():
    # As in PyTorch, the closure can return the loss Tensor itself instead of a float.
    x = tensor(np.array([3.0, -1.0]), requires_grad=True)
    optimizer = LBFGS([x], line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure) == 10.0
    np.testing.assert_allclose(x.data, [0.0, 0.0], atol=1e-6)


def test_optimiser_arguments_are_checked():
    p = start()
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Adam: lr must be positive, got 0"):
        Adam([p], lr=0)
    with pytest.raises(ValueError, match="LBFGS: line_search_fn must be None or 'strong_wolfe'"):
        LBFGS([p], line_search_fn="backtracking")

