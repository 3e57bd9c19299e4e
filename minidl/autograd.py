"""Reverse-mode automatic differentiation: Function, the graph walk, no_grad.

Every differentiable operation is a subclass of :class:`Function` with two
methods working on raw arrays (numpy or cupy):

* ``forward(*arrays, **options)`` computes the output and saves on ``self``
  whatever the backward pass will need;
* ``backward(grad_output)`` returns one gradient per input (``None`` where an
  input needs none), each with the shape of that input.

``Function.apply`` runs ``forward`` and, when gradients are wanted, records the
function as the *creator* of the output Tensor.  The recorded creators form a
directed acyclic graph from the loss back to the leaves; :func:`run_backward`
walks it in reverse topological order, with an explicit stack rather than
recursion so that a chain of 10,000 operations is no problem.
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


class Function:
    """One differentiable operation; see the module docstring."""

    def __init__(self):
        self.inputs: tuple = ()  # the input Tensors, set by apply()
        # One flag per input: does it want a gradient?  backward() may skip the
        # work for the others (a frozen conv weight saves a whole GEMM).
        self.needs_input_grad: tuple = ()
        self.freed = False

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run the op on Tensors and, if needed, remember how to differentiate it."""
        from minidl.tensor import Tensor, check_same_device

        device = check_same_device(cls.__name__, inputs)
        function = cls()
        function.needs_input_grad = tuple(is_grad_enabled() and t.requires_grad for t in inputs)
        output = function.forward(*(t.data for t in inputs), **options)
        if isinstance(output, np.generic):  # numpy reductions return scalars, not arrays
            output = np.asarray(output)
        requires_grad = any(function.needs_input_grad)
        result = Tensor(output, device=device, requires_grad=requires_grad)
        if requires_grad:
            function.inputs = inputs
            result.creator = function
        return result

    def release(self):
        """Drop saved arrays and inputs once the backward pass has used them."""
        self.__dict__ = {"inputs": (), "freed": True}


def topological_order(root) -> list:
    """Tensors reachable from ``root`` through creators, each after its inputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor.creator is not None:
            for parent in tensor.creator.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d loss / d root) to every leaf that requires grad.

    Gradients of intermediate tensors live only in a dictionary during the walk;
    leaves (tensors with no creator, such as parameters) accumulate into ``.grad``.
    """
    grads = {id(root): grad}
    for tensor in reversed(topological_order(root)):
        tensor_grad = grads.pop(id(tensor), None)
        if tensor_grad is None:
            continue
        function = tensor.creator
        if function is None:
            tensor.accumulate_grad(tensor_grad)
            continue
        if function.freed:
            raise RuntimeError(
                "backward: the graph through this tensor was already freed by an earlier "
                "backward(); call backward(retain_graph=True) the first time to go through it twice"
            )
        input_grads = function.backward(tensor_grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, parent_grad in zip(function.inputs, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        if not retain_graph:
            function.release()
