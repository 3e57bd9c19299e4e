"""The exercises the grader knows: per exercise, its parts, their inputs and solutions.

A :class:`Part` is one function the student writes in ``lessons/exercises/NN_*.py``.
It names the library function it is checked against (``solution``, a dotted name:
the library's own code is the model answer), gives a few input cases (built fresh
for every call, float64, seeded), says how the solution computes the expected
result from the same inputs (``reference``), and which arguments gradcheck should
differentiate (``grad_inputs``: an argument's position, or (position, item) for a
tensor inside a list argument).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import minidl.functional as F
from minidl.tensor import Tensor


@dataclass(frozen=True)
class Part:
    name: str
    solution: str
    cases: Callable[[], list]          # -> [(label, args tuple), ...]
    reference: Callable                # (solution, *args) -> expected result
    grad_inputs: tuple = ()
    atol: float = 1e-8


@dataclass(frozen=True)
class Exercise:
    title: str
    lesson: str
    parts: tuple


def _t(*shape, seed: int) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape))


def _img(a) -> Tensor:
    """A 2-D array as a (1, 1, H, W) float64 tensor."""
    return Tensor(np.asarray(a, dtype=np.float64)[None, None])


def _zeros(*shape) -> Tensor:
    return Tensor(np.zeros(shape))


class _GivenFeatures:
    """A stand-in for VGG16 whose ``features(x, names)`` are given tensors, so that the
    grader can run :func:`minidl.style.gatys.stylize_loss` on feature maps directly."""

    def __init__(self, features: dict):
        self.given = features

    def features(self, x, names):
        return {name: self.given[name] for name in names}


def _gatys_part(stylize_loss, *, content=None, style=None, style_grams=None, weights=None):
    """The content (or style) part of Gatys's loss, computed by the library's stylize_loss."""
    features = {}
    targets = {}
    content_layers, style_layers = (), ()
    if content is not None:
        features["content"], targets["content"] = content
        content_layers = ("content",)
    if style is not None:
        style_layers = tuple(f"style{k}" for k in range(len(style)))
        for name, f, g in zip(style_layers, style, style_grams):
            features[name], targets[name] = f, g
    c, s, _ = stylize_loss(_GivenFeatures(features), _zeros(1, 3, 2, 2), targets, content_layers=content_layers,
                           style_layers=style_layers, layer_weights=weights, content_weight=1.0,
                           style_weight=1.0, tv_weight=0.0)
    return c if content is not None else s


# ---------------------------------------------------------------- 02 convolution as a matrix

def _corr2d_cases():
    rng = np.random.default_rng(20)
    return [("d2l 3x3 * 2x2", (np.arange(9.0).reshape(3, 3), np.array([[1.0, 2.0], [3.0, 4.0]]))),
            ("5x6 * 3x2", (rng.standard_normal((5, 6)), rng.standard_normal((3, 2))))]


def _conv_matrix_cases():
    rng = np.random.default_rng(21)
    return [("3x3 kernel, 4x4 input", (rng.standard_normal((3, 3)), (4, 4))),
            ("2x3 kernel, 5x4 input", (rng.standard_normal((2, 3)), (5, 4)))]


def _conv_matrix_reference(conv2d, kernel, input_hw):
    h, w = input_hw
    columns = []
    for j in range(h * w):
        basis = np.zeros(h * w)
        basis[j] = 1.0
        columns.append(conv2d(_img(basis.reshape(h, w)), _img(kernel)).numpy().reshape(-1))
    return np.stack(columns, axis=1)


def _conv2d_cases():
    return [("x (1,2,4,4), w (2,2,3,3)", (_t(1, 2, 4, 4, seed=22), _t(2, 2, 3, 3, seed=23), 1, 0)),
            ("stride 2, padding 1", (_t(2, 2, 6, 5, seed=24), _t(3, 2, 3, 3, seed=25), 2, 1))]


# ---------------------------------------------------------------- 03 transposed convolution

def _conv_t_cases():
    d2l = np.array([[0.0, 1.0], [2.0, 3.0]])
    return [("d2l 2x2, 2x2 kernel", (_img(d2l), _img(d2l), 1, 0)),
            ("x (1,2,3,3), w (2,2,3,3), stride 2, padding 1", (_t(1, 2, 3, 3, seed=30), _t(2, 2, 3, 3, seed=31), 2, 1)),
            ("x (2,1,3,2), w (1,3,4,4), stride 2, padding 1", (_t(2, 1, 3, 2, seed=32), _t(1, 3, 4, 4, seed=33), 2, 1))]


_SIZES = [(3, 3, 1, 0, 1, 0), (3, 3, 2, 1, 1, 1), (4, 4, 2, 1, 1, 0), (5, 3, 3, 1, 2, 2), (2, 5, 1, 2, 1, 0)]


def _size_cases():
    return [(f"i={i} k={k} s={s} p={p} d={d} output_padding={op}", (i, k, s, p, d, op))
            for i, k, s, p, d, op in _SIZES]


def _size_reference(conv_transpose2d, i, k, s, p, d, op):
    return conv_transpose2d(_zeros(1, 1, i, i), _zeros(1, 1, k, k), stride=s, padding=p,
                            output_padding=op, dilation=d).shape[2]


def _restore_cases():
    return [(f"i={i} k={k} s={s} p={p} d={d}", (i, k, s, p, d))
            for i, k, s, p, d in [(5, 3, 2, 1, 1), (6, 3, 2, 1, 1), (7, 3, 3, 0, 1), (9, 3, 2, 2, 2), (8, 4, 3, 1, 1)]]


def _restore_reference(conv_transpose2d, i, k, s, p, d):
    """The output_padding that takes conv2d's output size back to i, found by trying them."""
    o = (i + 2 * p - d * (k - 1) - 1) // s + 1
    for op in range(max(s, d)):
        if _size_reference(conv_transpose2d, o, k, s, p, d, op) == i:
            return op
    raise AssertionError(f"no output_padding restores i={i}")


# ---------------------------------------------------------------- 06 pooling and unpooling

def _pool_cases():
    return [("x (1,2,4,4), 2x2 windows", (_t(1, 2, 4, 4, seed=60), 2, 2)),
            ("x (2,1,7,7), 3x3 windows, stride 2 (overlap)", (_t(2, 1, 7, 7, seed=61), 3, 2))]


def _unpool_cases():
    """Non-overlapping windows (where windows overlap, unpooling writes and a value is lost)."""
    cases = []
    for label, shape, k, seed in (("y (1,2,2,2), 2x2 windows of a 4x4 plane", (1, 2, 4, 4), 2, 63),
                                  ("y (2,1,2,2), 3x3 windows of a 7x7 plane", (2, 1, 7, 7), 3, 64)):
        x = _t(*shape, seed=seed)
        pooled, switches = F.max_pool2d(x, k, return_indices=True)
        cases.append((label, (_t(*pooled.shape, seed=seed + 10), switches, k, k, x.shape[2:])))
    return cases


# ---------------------------------------------------------------- 09 feature inversion

def _tv_cases():
    ramp = np.tile(np.arange(6.0) * 0.5, (5, 1))
    checker = np.where(np.indices((4, 4)).sum(axis=0) % 2 == 0, 1.0, -1.0)
    return [("random (1,3,5,6)", (_t(1, 3, 5, 6, seed=90),)), ("ramp of slope 0.5", (_img(ramp),)),
            ("±1 checkerboard", (_img(checker),))]


def _beta_cases():
    return [("beta 2", (_t(1, 3, 5, 5, seed=91) * 20.0, 2.0)), ("beta 1.5", (_t(1, 3, 4, 6, seed=92) * 20.0, 1.5))]


def _alpha_cases():
    return [("alpha 6", (_t(1, 3, 4, 4, seed=93) * 60.0, 6.0)), ("alpha 2", (_t(1, 3, 3, 5, seed=94) * 60.0, 2.0))]


# ---------------------------------------------------------------- 11 Gram matrices

def _gram_cases():
    return [("x (1,3,4,5)", (_t(1, 3, 4, 5, seed=110),)), ("x (2,4,3,3)", (_t(2, 4, 3, 3, seed=111),))]


def _gram_loss_cases():
    return [("feature (1,3,4,4)", (_t(1, 3, 4, 4, seed=112), F.gram_matrix(_t(1, 3, 5, 5, seed=113)))),
            ("feature (1,5,3,6)", (_t(1, 5, 3, 6, seed=114), F.gram_matrix(_t(1, 5, 2, 2, seed=115))))]


# ---------------------------------------------------------------- 12 Gatys's losses

def _content_cases():
    return [("feature (1,4,3,3)", (_t(1, 4, 3, 3, seed=120), _t(1, 4, 3, 3, seed=121))),
            ("feature (1,2,5,4)", (_t(1, 2, 5, 4, seed=122), _t(1, 2, 5, 4, seed=123)))]


def _style_cases():
    features = [_t(1, 3, 4, 4, seed=124), _t(1, 5, 2, 2, seed=125)]
    grams = [F.gram_matrix(_t(1, 3, 6, 6, seed=126)), F.gram_matrix(_t(1, 5, 3, 3, seed=127))]
    return [("two layers, weights 1 and 0.5", (features, grams, [1.0, 0.5])),
            ("one layer, weight 2", (features[:1], grams[:1], [2.0]))]


EXERCISES = {
    "02": Exercise("convolution as a matrix", "02_convolution_as_matrix", (
        Part("corr2d", "minidl.functional.conv2d", _corr2d_cases,
             lambda conv2d, X, K: conv2d(_img(X), _img(K))[0, 0]),
        Part("conv_matrix", "minidl.functional.conv2d", _conv_matrix_cases, _conv_matrix_reference),
        Part("conv2d", "minidl.functional.conv2d", _conv2d_cases,
             lambda conv2d, x, w, s, p: conv2d(x, w, stride=s, padding=p), grad_inputs=(0, 1)),
    )),
    "03": Exercise("transposed convolution", "03_transposed_convolution", (
        Part("conv_transpose2d", "minidl.functional.conv_transpose2d", _conv_t_cases,
             lambda ct, x, w, s, p: ct(x, w, stride=s, padding=p), grad_inputs=(0, 1)),
        Part("transposed_output_size", "minidl.functional.conv_transpose2d", _size_cases, _size_reference),
        Part("output_padding_for", "minidl.functional.conv_transpose2d", _restore_cases, _restore_reference),
    )),
    "06": Exercise("pooling, switches, unpooling", "06_pooling_unpooling", (
        Part("max_pool2d_with_indices", "minidl.functional.max_pool2d", _pool_cases,
             lambda pool, x, k, s: pool(x, k, stride=s, return_indices=True)),
        Part("max_unpool2d", "minidl.functional.max_unpool2d", _unpool_cases,
             lambda unpool, y, idx, k, s, size: unpool(y, idx, k, stride=s, output_size=size),
             grad_inputs=(0,)),
    )),
    "09": Exercise("feature inversion: the regularisers", "09_feature_inversion", (
        Part("tv_loss", "minidl.functional.tv_loss", _tv_cases, lambda tv, x: tv(x), grad_inputs=(0,)),
        Part("tv_beta", "minidl.inversion.optimize.tv_beta", _beta_cases, lambda tv, x, b: tv(x, b),
             grad_inputs=(0,)),
        Part("alpha_norm", "minidl.inversion.optimize.alpha_norm", _alpha_cases, lambda a, x, al: a(x, al),
             grad_inputs=(0,)),
    )),
    "11": Exercise("Gram matrices", "11_gram_matrices_texture", (
        Part("gram_matrix", "minidl.functional.gram_matrix", _gram_cases, lambda g, x: g(x), grad_inputs=(0,)),
        Part("gram_loss", "minidl.style.gatys.stylize_loss", _gram_loss_cases,
             lambda loss, f, g: _gatys_part(loss, style=[f], style_grams=[g], weights=[1.0]),
             grad_inputs=(0,)),
    )),
    "12": Exercise("Gatys's content and style losses", "12_gatys_style_transfer", (
        Part("content_loss", "minidl.style.gatys.stylize_loss", _content_cases,
             lambda loss, f, p: _gatys_part(loss, content=(f, p)), grad_inputs=(0,)),
        Part("style_loss", "minidl.style.gatys.stylize_loss", _style_cases,
             lambda loss, fs, gs, ws: _gatys_part(loss, style=fs, style_grams=gs, weights=ws),
             grad_inputs=((0, 0), (0, 1))),
    )),
}
