"""The weight-file layouts minidl reads, described from the file's metadata alone.

Each reader here looks at groups, attributes, and each dataset's declared shape and
dtype, and returns a :class:`Layout`: which dataset becomes which state_dict key.
Nothing here reads array values.  That happens later, in :mod:`minidl.weights.reader`,
and only after every declared shape has been checked: a weight file is untrusted
input, and a dataset can claim any size.

``keras2``
    The Keras 2 "legacy" layout of the official VGG16 file
    ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``.  The root attribute
    ``layer_names`` lists the layers in network order; each layer is a group whose
    attribute ``weight_names`` lists its datasets (kernel first, then bias).
``keras3``
    What Keras 3's ``model.save_weights("x.weights.h5")`` writes, and the
    ``model.weights.h5`` inside a ``.keras`` archive.  Groups under ``layers/`` are
    named after the layer's *class* and a counter, ``conv2d``, ``conv2d_1``, ...,
    ``conv2d_12``, never after the layer; each holds ``vars/0`` (kernel) and
    ``vars/1`` (bias).  From Keras 3.6 on the layer's own name is the attribute
    ``name`` of the ``vars`` group.  Without it, ``conv2d_<k>`` is the k-th
    convolution of the network, counting k as a number (h5py lists
    ``conv2d_10`` before ``conv2d_2``).
``minidl``
    minidl's own layout, written by :func:`save_state_dict`: one dataset per
    state_dict key and the root attributes ``minidl_format`` and ``format_version``.

Keras stores a convolution kernel as (kh, kw, C_in, C_out); minidl, like PyTorch,
wants (C_out, C_in, kh, kw).  From the Keras files only convolutions (a 4-D
kernel and a 1-D bias) are read: minidl's VGG16 is a feature extractor.  Other
layers with weights, such as ``fc1``, ``fc2`` and ``predictions`` of the "with
top" file, are listed in ``Layout.ignored``, never dropped silently.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

MINIDL_FORMAT = "minidl-state-dict"  # value of the root attribute ``minidl_format``
FORMAT_VERSION = 1  # bump when the minidl layout changes

# Keras (kh, kw, C_in, C_out) -> minidl (C_out, C_in, kh, kw).
KERAS_KERNEL_AXES = (3, 2, 0, 1)

LAYOUT_DESCRIPTIONS = {
    "keras2": "Keras 2 legacy HDF5 (kernels (kh, kw, in, out) -> (out, in, kh, kw))",
    "keras3": "Keras 3 .weights.h5 (kernels (kh, kw, in, out) -> (out, in, kh, kw))",
    "keras3-archive": "model.weights.h5 of a Keras 3 .keras archive "
    "(kernels (kh, kw, in, out) -> (out, in, kh, kw))",
    "minidl": f"minidl state_dict, format version {FORMAT_VERSION}",
}


class WeightsError(ValueError):
    """A weight file is missing, unreadable, of unknown layout, or has bad values."""


@dataclass(frozen=True)
class Entry:
    """One state_dict key and the dataset that will fill it; nothing read yet.

    ``axes``, if given, is the transpose that turns the stored array into
    minidl's order; :attr:`shape` is the declared shape after it.
    """

    key: str
    dataset: h5py.Dataset
    axes: tuple[int, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        stored = self.dataset.shape  # from the dataset's header: no data is read
        return stored if self.axes is None else tuple(stored[a] for a in self.axes)

    @property
    def dtype(self) -> np.dtype:
        return self.dataset.dtype

    @property
    def source(self) -> str:
        """Where the dataset is in the file, e.g. ``/layers/conv2d/vars/0``."""
        return self.dataset.name

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass
class Layout:
    """What a file holds, in network order: the entries to read, and what is skipped."""

    name: str
    entries: list[Entry]
    ignored: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth telling the user, e.g. unnamed layers


def detect(f: h5py.File, path: Path, conv_names: list[str] | None = None) -> Layout:
    """Recognise the layout of an open HDF5 file and describe its arrays.

    ``conv_names`` are the model's convolution layers in network order; they
    name the convolutions of a Keras 3 file that does not store layer names.
    """
    if "minidl_format" in f.attrs:
        return read_minidl(f, path)
    if "layer_names" in f.attrs:
        return read_keras2(f, path)
    if isinstance(f.get("model_weights"), h5py.Group) and "layer_names" in f["model_weights"].attrs:
        # A whole Keras 2 model saved with model.save(): the weights live one level down.
        return read_keras2(f["model_weights"], path)
    if isinstance(f.get("layers"), h5py.Group):
        return read_keras3(f, path, conv_names)
    raise WeightsError(
        f"{path}: unknown weight layout; expected a Keras 2 file (root attribute "
        f"'layer_names'), a Keras 3 .weights.h5 file (group 'layers') or a minidl "
        f"file (root attribute 'minidl_format'); found top-level entries "
        f"{sorted(f.keys())} and attributes {sorted(f.attrs.keys())}"
    )


# ---------------------------------------------------------------------------
# Keras 2
# ---------------------------------------------------------------------------


def read_keras2(root: h5py.Group, path: Path) -> Layout:
    """Keras 2 legacy layout: root attr ``layer_names``, per-layer attr ``weight_names``."""
    layout = Layout("keras2", [])
    for layer in _strings(root.attrs["layer_names"]):
        if layer not in root:
            raise WeightsError(f"{path}: layer '{layer}' is listed in 'layer_names' but missing")
        group = root[layer]
        # Follow weight_names exactly: some files nest them, e.g. "block1_conv1/kernel:0".
        datasets = []
        for name in _strings(group.attrs.get("weight_names", [])):
            if name not in group:
                raise WeightsError(f"{path}: layer '{layer}': dataset '{name}' is missing")
            datasets.append(_dataset(group, name, path, layer))
        if _is_conv(datasets):
            _add_conv(layout, layer, datasets)
        elif datasets:  # a layer with weights that is not a convolution (fc1, ...)
            layout.ignored.append(layer)
    return layout


# ---------------------------------------------------------------------------
# Keras 3
# ---------------------------------------------------------------------------

# "conv2d_12" -> class "conv2d", counter 12; "conv2d" -> counter 0.
_GROUP_NAME = re.compile(r"^(?P<cls>.*?)(?:_(?P<k>\d+))?$")


def keras3_group_order(name: str) -> tuple[str, int]:
    """Sort key of a ``layers/`` group: its class, then its counter as a number."""
    match = _GROUP_NAME.match(name)
    return match["cls"], int(match["k"] or 0)


def read_keras3(f: h5py.File, path: Path, conv_names: list[str] | None = None) -> Layout:
    """Keras 3 layout: ``layers/<class>_<k>/vars/0`` (kernel), ``vars/1`` (bias).

    The layer name comes from the ``vars`` group's ``name`` attribute (Keras >= 3.6).
    A file without it names its convolutions by position: the k-th ``conv2d`` group
    is ``conv_names[k]`` when the model's names are given, else keeps its group name.
    """
    layout = Layout("keras3", [])
    convs = []  # (group name, layer name or None, [kernel, bias]) in network order
    for group_name in sorted(f["layers"], key=keras3_group_order):
        group = f["layers"][group_name]
        variables = group.get("vars") if isinstance(group, h5py.Group) else None
        if not isinstance(variables, h5py.Group) or "layers" in group:
            if not isinstance(group, h5py.Group) or len(group):
                layout.ignored.append(group_name)  # e.g. a nested model: not something we read
            continue
        name = variables.attrs.get("name")
        name = name.decode("utf8") if isinstance(name, bytes) else name
        datasets = []
        for i in range(len(variables)):  # Keras numbers the variables 0, 1, ...
            if str(i) not in variables:
                raise WeightsError(
                    f"{path}: layer '{name or group_name}': dataset "
                    f"'layers/{group_name}/vars/{i}' is missing"
                )
            datasets.append(_dataset(variables, str(i), path, name or group_name))
        is_conv = keras3_group_order(group_name)[0] == "conv2d" and _is_conv(datasets)
        if is_conv:
            convs.append((group_name, name, datasets))
        elif datasets:
            layout.ignored.append(name or group_name)

    named = [name is not None for _, name, _ in convs]
    if convs and not all(named):
        if any(named):
            missing = [g for g, name, _ in convs if name is None]
            raise WeightsError(
                f"{path}: some convolution groups carry a layer name and some do not "
                f"({', '.join(missing)}); Keras writes all or none"
            )
        layout.notes.append(
            "this file does not store layer names (Keras < 3.6): conv2d_<k> is taken "
            "as the k-th convolution, counting k as a number"
        )
        if conv_names is not None:
            if len(conv_names) != len(convs):
                raise WeightsError(
                    f"{path}: the file has {len(convs)} convolutions "
                    f"({convs[0][0]} ... {convs[-1][0]}) and no layer names; the model has "
                    f"{len(conv_names)} convolutions, so they cannot be matched by position"
                )
            convs = [(g, name, d) for (g, _, d), name in zip(convs, conv_names)]
    for group_name, name, datasets in convs:
        _add_conv(layout, name or group_name, datasets)
    return layout


# ---------------------------------------------------------------------------
# Shared by the Keras layouts
# ---------------------------------------------------------------------------


def _is_conv(datasets: list[h5py.Dataset]) -> bool:
    """A convolution: a 4-D kernel and a 1-D bias (whether their sizes agree is
    checked later, with the model, before anything is read)."""
    return len(datasets) == 2 and datasets[0].ndim == 4 and datasets[1].ndim == 1


def _add_conv(layout: Layout, layer: str, datasets: list[h5py.Dataset]) -> None:
    kernel, bias = datasets
    layout.entries.append(Entry(f"{layer}.weight", kernel, KERAS_KERNEL_AXES))
    layout.entries.append(Entry(f"{layer}.bias", bias))


def _dataset(group: h5py.Group, name: str, path: Path, layer: str) -> h5py.Dataset:
    obj = group[name]
    if not isinstance(obj, h5py.Dataset):
        raise WeightsError(f"{path}: layer '{layer}': '{obj.name}' is a group, not a dataset")
    return obj


def _strings(values) -> list[str]:
    """HDF5 attributes hold names as bytes (b'block1_conv1'); return them as str."""
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


# ---------------------------------------------------------------------------
# minidl's own layout
# ---------------------------------------------------------------------------


def read_minidl(f: h5py.File, path: Path) -> Layout:
    """minidl layout: one dataset per key (keys may contain '/' for nested groups)."""
    version = int(f.attrs.get("format_version", -1))
    if f.attrs["minidl_format"] != MINIDL_FORMAT or version > FORMAT_VERSION:
        raise WeightsError(
            f"{path}: minidl format {f.attrs['minidl_format']!r} version {version} is not "
            f"supported (this minidl reads {MINIDL_FORMAT!r} up to version {FORMAT_VERSION})"
        )
    layout = Layout("minidl", [], metadata=json.loads(f.attrs.get("metadata", "{}")))

    def walk(group: h5py.Group, prefix: str) -> None:
        for name, obj in group.items():  # in the order they were written (track_order)
            if isinstance(obj, h5py.Group):
                walk(obj, f"{prefix}{name}/")
            else:
                layout.entries.append(Entry(prefix + name, obj))

    walk(f, "")
    return layout


def save_state_dict(
    path: str | os.PathLike,
    state_dict: dict,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``state_dict`` to an HDF5 file in minidl's layout and return the path.

    One dataset per key, in the dict's order; root attributes
    ``minidl_format="minidl-state-dict"`` and ``format_version=1``; ``metadata``
    (anything JSON can store) goes into the root attribute ``metadata``.

    The file is first written to a temporary file in the same folder and then
    renamed, so an interrupted save never leaves a half-written file behind.
    An existing file is only replaced when ``overwrite=True``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    arrays = {key: np.asarray(value) for key, value in state_dict.items()}
    for key, array in arrays.items():
        check_finite(array, path, key)  # a file we could not load back is no use
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["minidl_format"] = MINIDL_FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["metadata"] = json.dumps(metadata or {})
            for key, array in arrays.items():
                f.create_dataset(key, data=array)
        os.replace(tmp, path)  # atomic on the same file system
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def check_finite(array: np.ndarray, path, key: str) -> None:
    """Raise if a floating-point array holds NaN or Inf."""
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise WeightsError(f"{path}: '{key}' contains {bad} NaN/Inf value(s)")


def temporary_name(path: Path) -> Path:
    """A hidden name next to ``path`` to write to before renaming, e.g. ``.model.h5.1234.tmp``.

    Same folder, so the final ``os.replace`` is a rename, which is atomic;
    the process id keeps two programs writing the same file apart.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
