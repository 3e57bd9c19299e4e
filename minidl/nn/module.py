"""Module and Parameter: the building blocks of networks.

A Module owns Parameters (trainable tensors), buffers (state that is saved but
not trained, such as BatchNorm's running statistics) and sub-modules.  Assigning
one of these as an attribute registers it, so ``named_parameters()`` and
``state_dict()`` can find everything by walking the tree of modules; names are
dotted paths like ``"features.0.weight"``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from minidl.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: it always requires grad."""

    def __init__(self, data, device: str = "cpu"):
        super().__init__(data, device=device, requires_grad=True)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={self.device!r})"


class Module:
    """Base class of layers and networks; subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() first")
        if name in self._buffers and type(value) is Tensor:
            # Re-assigning a buffer (self.running_mean = ...) keeps it a buffer, as in PyTorch.
            self._buffers[name] = value
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: Tensor) -> None:
        """Keep ``value`` in the state_dict without training it."""
        setattr(self, name, value)
        self._buffers[name] = value

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -------------------------------------------------------------- walking
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}{name}.")

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self):
        for prefix, module in self.named_modules():
            for name, parameter in module._parameters.items():
                yield prefix + name, parameter

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name, buffer in module._buffers.items():
                yield prefix + name, buffer

    def train(self, mode: bool = True) -> Module:
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, flag: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter; returns self.

        A frozen network still passes gradients through to its *input*, which is
        all feature inversion and style transfer need, and skips the weight-gradient
        work entirely.
        """
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: str) -> Module:
        """Move every parameter and buffer to ``device``; returns self.

        The tensors stay the same objects (only their data moves), so an optimiser
        built before the move still updates them.  Gradients are dropped.
        """
        for tensor in self._state_tensors().values():
            tensor.data = tensor.detach().to(device).data
            tensor.device = device
            tensor.grad = None
        return self

    # -------------------------------------------------------------- state
    def _state_tensors(self) -> OrderedDict[str, Tensor]:
        state = OrderedDict(self.named_parameters())
        state.update(self.named_buffers())
        return state

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Name -> numpy array copy of every parameter and buffer."""
        return OrderedDict((k, t.numpy().copy()) for k, t in self._state_tensors().items())

    def load_state_dict(self, state_dict: dict, strict: bool = True, source: str = "state_dict"):
        """Copy arrays into the parameters and buffers, checking names and shapes.

        With ``strict`` every key must match exactly; shapes must always match.
        ``strict=False`` loads the keys both sides have, but at least one.
        Nothing is changed unless everything fits: no silent partial loads.
        """
        from minidl.weights import WeightsError, check_state_dict

        own = self._state_tensors()
        expected = {k: t.shape for k, t in own.items()}
        if strict:
            check_state_dict(expected, state_dict, source)
        else:
            shared = {k: v for k, v in state_dict.items() if k in expected}
            if not shared:
                raise WeightsError(
                    f"{source}: none of its keys ({_first_few(state_dict)}) is a parameter or "
                    f"buffer of {type(self).__name__} ({_first_few(own)})"
                )
            check_state_dict({k: expected[k] for k in shared}, shared, source)
        for key, array in state_dict.items():
            if key in own:
                t = own[key]
                t.data[...] = t.xp.asarray(np.asarray(array), dtype=t.dtype)
        return self

    def save(self, path, overwrite: bool = False):
        """Write the state_dict to an HDF5 file in minidl's format."""
        from minidl.weights import save_state_dict

        return save_state_dict(path, self.state_dict(), {"module": type(self).__name__},
                               overwrite=overwrite)

    def load(self, path, strict: bool = True) -> Module:
        """Load weights from any supported HDF5 file (see minidl.weights)."""
        from minidl.weights import load_weights

        # Strict: the file's declared shapes are checked against ours before anything is read.
        expected = {k: t.shape for k, t in self._state_tensors().items()} if strict else None
        return self.load_state_dict(load_weights(path, expected=expected), strict=strict,
                                    source=str(path))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + (")" if len(lines) == 1 else "\n)")

    def extra_repr(self) -> str:
        return ""


def _first_few(keys, count: int = 5) -> str:
    keys = list(keys)
    return ", ".join(keys[:count]) + (", ..." if len(keys) > count else "")
