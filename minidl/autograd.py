"""Reverse-mode automatic differentiation: Function, the graph walk, no_grad.

Every differentiable operation is a subclass of :class:`Function` with two
methods working on raw arrays (numpy or cupy):

* ``forward(*arrays, **options)`` computes the output and saves on ``self``
  whatever the backward pass will need;
* ``backward(grad_output)`` returns one gradient per input (``None`` where an
  input needs none), each with the shape of that input.

``Function.apply`` runs ``forward`` and, when gradients are wanted, records the
function as the *creator* of the output Tensor.  Each function remembers, per
input, only where that input came from (its ``parents``): the Function that
made it, or the input Tensor itself if it is a *leaf* (a tensor the user made
with ``requires_grad=True``, such as a parameter).  So the graph is a directed
acyclic graph of Functions ending in leaves, and it keeps no intermediate
tensor alive: an activation's memory is freed as soon as nothing (a variable,
or a Function that saved it for its backward) needs it.

:func:`run_backward` walks the graph in reverse topological order, with an
explicit stack rather than recursion so that a chain of 10,000 operations is
no problem.

Layering: this module is the bottom one and imports nothing else from minidl.
It sees tensors only through what it uses of them (``data``, ``device``,
``requires_grad``, ``creator``, ``_version``, ``accumulate_grad()``, and
``_result()``, which wraps an output array in a new Tensor); ``minidl.tensor``
builds on it, and ``minidl.tensor_ops`` (the Functions) on both.

Version counters: an in-place change (``x += 1`` under ``no_grad``) bumps
``x._version``.  Each Function notes the versions of its inputs and output when
it is recorded, and backward refuses to use it if one has changed since, as
PyTorch does: its saved arrays may be the very memory that was overwritten.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside ``with no_grad():`` no graph is recorded (faster, less memory)."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


def check_same_device(op: str, tensors) -> str:
    """The common device of ``tensors``; a clear error if they differ."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        shapes = ", ".join(f"{t.shape} on {t.device}" for t in tensors)
        raise ValueError(f"{op}: inputs are on different devices ({shapes}); use .to(device)")
    return devices.pop()


class Function:
    """One differentiable operation; see the module docstring."""

    def __init__(self):
        # Per input: the Function that made it, the input itself if it is a leaf
        # Tensor, or None if it needs no gradient.  Set by attach().
        self.parents: tuple = ()
        # Per input: does it want a gradient?  backward() may skip the work for
        # the others (a frozen conv weight saves a whole GEMM).
        self.needs_input_grad: tuple = ()
        # (counter, value) of each input and the output when recorded.
        self.versions: tuple = ()
        self.freed = False

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run the op on Tensors and, if needed, remember how to differentiate it."""
        return cls.run(*inputs, **options)[0]

    @classmethod
    def run(cls, *inputs, **options) -> tuple:
        """Like :meth:`apply`, but also return the Function object, for ops whose
        forward pass keeps a second result (max-pooling's switches)."""
        device = check_same_device(cls.__name__, inputs)
        function = cls()
        function.needs_input_grad = tuple(is_grad_enabled() and t.requires_grad for t in inputs)
        output = function.forward(*(t.data for t in inputs), **options)
        if isinstance(output, np.generic):  # numpy reductions return scalars, not arrays
            output = np.asarray(output)
        result = inputs[0]._result(output, device)
        function.attach(result, inputs)
        return result, function

    def attach(self, output, inputs) -> None:
        """Make this function the creator of ``output`` if any input wants a gradient."""
        if not any(self.needs_input_grad):
            return
        self.parents = tuple(
            (t.creator or t) if needed else None for t, needed in zip(inputs, self.needs_input_grad)
        )
        self.versions = tuple((t._version, t._version[0]) for t in (*inputs, output))
        output.requires_grad = True
        output.creator = self

    def release(self):
        """Drop saved arrays and parents once the backward pass has used them."""
        self.__dict__ = {"parents": (), "freed": True}


def topological_order(root: Function) -> list:
    """Functions reachable from ``root`` through parents, each after its parents."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        function, parents_done = stack.pop()
        if parents_done:
            order.append(function)
            continue
        if id(function) in visited:
            continue
        visited.add(id(function))
        stack.append((function, True))
        for parent in function.parents:
            if isinstance(parent, Function) and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _check_versions(function: Function) -> None:
    for counter, seen in function.versions:
        if counter[0] != seen:
            raise RuntimeError(
                f"backward: a tensor that {type(function).__name__} needs for its gradient was "
                "modified by an in-place operation after it was used (as in PyTorch, this is "
                "refused: the saved values are gone); do the in-place change after backward(), "
                "or write x = x + ... instead of x += ..."
            )


def run_backward(root, grad, retain_graph: bool = False, leaf_grads: dict | None = None) -> None:
    """Propagate ``grad`` (d loss / d root) to every leaf that requires grad.

    Each function's output gradient is summed in a dictionary until the walk
    reaches it (all its consumers come first in reverse topological order).
    Leaves accumulate into ``.grad``, or, if ``leaf_grads`` is given, into
    ``leaf_grads[id(leaf)]`` (arrays), leaving every ``.grad`` untouched.
    """
    def deliver(leaf, leaf_grad):
        if leaf_grads is None:
            leaf.accumulate_grad(leaf_grad)
        else:
            key = id(leaf)
            leaf_grads[key] = leaf_grad if key not in leaf_grads else leaf_grads[key] + leaf_grad

    if root.creator is None:  # the root is a leaf itself
        deliver(root, grad)
        return
    grads = {id(root.creator): grad}
    for function in reversed(topological_order(root.creator)):
        output_grad = grads.pop(id(function), None)
        if output_grad is None:
            continue
        if function.freed:
            raise RuntimeError(
                "backward: the graph through this tensor was already freed by an earlier "
                "backward(); call backward(retain_graph=True) the first time to go through it twice"
            )
        _check_versions(function)
        input_grads = function.backward(output_grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, parent_grad in zip(function.parents, input_grads):
            if parent is None or parent_grad is None:
                continue
            if isinstance(parent, Function):
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
            else:
                deliver(parent, parent_grad)
        if not retain_graph:
            function.release()


def grad(output, inputs, grad_output=None, retain_graph: bool = False) -> tuple:
    """d output / d input for each of ``inputs``, without touching any ``.grad``
    (as ``torch.autograd.grad``).  An input the output does not depend on gets None.

    ``grad_output`` is d(something)/d(output), an array or Tensor of output's shape;
    it may be omitted for a one-element output, where it defaults to 1.
    """
    inputs = tuple(inputs)
    if not output.requires_grad:
        raise RuntimeError("grad: the output does not require grad (no input had requires_grad=True, "
                           "or it was computed under no_grad())")
    for t in inputs:
        if not t.requires_grad or t.creator is not None:
            raise ValueError("grad: every input must be a leaf tensor with requires_grad=True")
    sink: dict = {}
    run_backward(output, output._grad_output(grad_output, "grad"), retain_graph, leaf_grads=sink)
    return tuple(
        None if id(t) not in sink else t._result(t.xp.asarray(sink[id(t)], dtype=t.dtype), t.device)
        for t in inputs
    )
