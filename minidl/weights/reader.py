"""Reading a weight file: open it, describe it, check it, and only then read it.

A weight file is untrusted input.  A dataset's header may claim any shape, and a
gzip-compressed dataset claiming 4 GB fits in a few kilobytes.  So reading goes in
three steps, and the first two touch only metadata:

1. describe: :func:`minidl.weights.formats.detect` maps datasets to state_dict keys;
2. check: every declared dtype must be numeric, and every declared shape must be
   the model's (when the caller names the model with ``expected``) and agree with
   itself (a convolution's bias has one value per output channel);
3. read the values, and refuse NaN or Inf.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from minidl.weights.formats import Entry, Layout, WeightsError, check_finite, detect

# Inside a .keras archive (Keras 3's model.save): the weights, and a small JSON
# with the Keras version and the date.  config.json describes the model.
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"
KERAS_ARCHIVE_METADATA = "metadata.json"
MAX_METADATA_BYTES = 1 << 20  # metadata.json is about 100 bytes; refuse to read a huge one


@dataclass(frozen=True)
class ArrayInfo:
    """What a file declares about one array: shape (in minidl's order), dtype, dataset."""

    shape: tuple[int, ...]
    dtype: np.dtype
    source: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class WeightsFile:
    """Everything :func:`read_weights` (or :func:`inspect_weights`) learned about a file.

    Attributes:
        path: the file that was read.
        layout: ``"keras2"``, ``"keras3"``, ``"keras3-archive"`` or ``"minidl"``.
        arrays: key -> :class:`ArrayInfo`, in network order.
        state_dict: key -> NumPy array in minidl's conventions (empty when only inspected).
        ignored: layers that have weights but were not read (e.g. ``fc1``, ``fc2``).
        metadata: the ``metadata`` given to ``save_state_dict`` (minidl files), or
            a ``.keras`` archive's metadata.json; empty otherwise.
        notes: things worth telling the user, e.g. that the file has no layer names.
    """

    path: Path
    layout: str
    arrays: dict[str, ArrayInfo]
    state_dict: dict[str, np.ndarray] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def num_parameters(self) -> int:
        """Total number of values in all arrays."""
        return sum(info.size for info in self.arrays.values())


def load_weights(
    path: str | os.PathLike, verbose: bool = True, expected: dict | None = None
) -> dict[str, np.ndarray]:
    """Read a weight file of any supported layout and return its state_dict.

    Layers that were skipped (such as the dense layers of a "with top" VGG16
    file) are printed as ``ignored: fc1, fc2, predictions`` unless
    ``verbose=False``.  ``expected`` is as for :func:`read_weights`.
    """
    weights = read_weights(path, expected=expected)
    if weights.ignored and verbose:
        print(f"{weights.path}: ignored: {', '.join(weights.ignored)} (not convolution layers)")
    return weights.state_dict


def read_weights(path: str | os.PathLike, expected: dict | None = None) -> WeightsFile:
    """Read a weight file, detect its layout, and return a :class:`WeightsFile`.

    Args:
        path: a ``.h5`` / ``.weights.h5`` file or a ``.keras`` archive.
        expected: the model's ``{key: shape}`` in network order, e.g.
            ``{"block1_conv1.weight": (64, 3, 3, 3), ...}``.  When given, the file
            must hold exactly these keys and shapes, which is checked before any
            value is read; it also names the convolutions of a Keras 3 file that
            stores no layer names.
    """
    path = Path(path)
    with _open(path) as (f, layout_name, metadata):
        layout = detect(f, path, _conv_names(expected))
        _check_declared(layout, path, expected)
        weights = _describe(path, layout_name or layout.name, layout, metadata)
        for entry in layout.entries:
            weights.state_dict[entry.key] = _read(entry, path)
    for key, array in weights.state_dict.items():
        check_finite(array, path, key)
    return weights


def inspect_weights(path: str | os.PathLike) -> WeightsFile:
    """Describe a weight file from its metadata alone: keys, shapes, dtypes, ignored
    layers.  No array is read, so this is quick and safe on any file."""
    path = Path(path)
    with _open(path) as (f, layout_name, metadata):
        layout = detect(f, path)
        _check_declared(layout, path, None)
        return _describe(path, layout_name or layout.name, layout, metadata)


def check_state_dict(expected: dict[str, tuple], found: dict, path) -> None:
    """Raise WeightsError unless ``found`` has exactly the keys and shapes of ``expected``.

    Args:
        expected: key -> shape the model needs, e.g. ``{"conv.weight": (64, 3, 3, 3)}``.
        found: key -> array (or anything with ``.shape``) read from the file.
        path: the file, named in the message.

    All problems are listed at once: missing keys, unexpected keys, and every
    shape mismatch as ``key: expected (..), found (..)``.
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"  {k}: expected shape {tuple(expected[k])}, found {tuple(np.shape(found[k]))}"
        for k in expected
        if k in found and tuple(np.shape(found[k])) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if wrong:
        problems.append("shape mismatch:\n" + "\n".join(wrong))
    if problems:
        raise WeightsError(f"{path}: weights do not fit the model\n" + "\n".join(problems))


# ---------------------------------------------------------------------------
# The three steps
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _open(path: Path):
    """Open ``path`` as HDF5 and yield ``(file, layout name or None, metadata)``.

    A ``.keras`` archive (a zip) is opened in place: h5py reads its
    ``model.weights.h5`` member inside the zip file, only the parts it needs.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weight file")
    if h5py.is_hdf5(path):
        with _h5(path, path) as f:
            yield f, None, {}
    elif zipfile.is_zipfile(path):
        with _keras_archive(path) as (member, metadata), _h5(member, path) as f:
            yield f, "keras3-archive", metadata
    else:
        raise WeightsError(
            f"{path}: not an HDF5 file or a .keras archive (expected a .h5 weight file; "
            f"is it truncated?)"
        )


@contextlib.contextmanager
def _h5(file, path: Path):
    try:
        f = h5py.File(file, "r")
    except OSError as e:  # e.g. "truncated file: eof = ..."
        raise WeightsError(f"{path}: cannot open HDF5 file, it may be truncated: {e}") from e
    with f:
        yield f


@contextlib.contextmanager
def _keras_archive(path: Path):
    """Yield the open ``model.weights.h5`` member of a ``.keras`` zip, and its metadata."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"{path}: cannot open the zip archive: {e}") from e
    with archive:
        names = archive.namelist()
        if KERAS_ARCHIVE_WEIGHTS not in names:
            raise WeightsError(
                f"{path}: a zip archive without {KERAS_ARCHIVE_WEIGHTS} (it holds "
                f"{', '.join(names[:5]) or 'nothing'}); a Keras 3 .keras file has one"
            )
        metadata = {}
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        if sizes.get(KERAS_ARCHIVE_METADATA, MAX_METADATA_BYTES + 1) <= MAX_METADATA_BYTES:
            with contextlib.suppress(ValueError):  # bad JSON: no metadata, still load
                metadata = json.loads(archive.read(KERAS_ARCHIVE_METADATA))
        metadata = metadata if isinstance(metadata, dict) else {}
        info = archive.getinfo(KERAS_ARCHIVE_WEIGHTS)
        if info.compress_type == zipfile.ZIP_STORED:  # as Keras writes it
            with open(path, "rb") as raw:
                yield _StoredMember(raw, info), metadata
        else:  # re-zipped with compression: inflate once, as h5py seeks back and forth
            free = shutil.disk_usage(tempfile.gettempdir()).free
            if info.file_size > free:
                raise WeightsError(
                    f"{path}: {KERAS_ARCHIVE_WEIGHTS} is compressed and would take "
                    f"{info.file_size:,} bytes unpacked; only {free:,} are free for it"
                )
            with archive.open(info) as member, tempfile.TemporaryFile() as copy:
                shutil.copyfileobj(member, copy)
                yield copy, metadata


class _StoredMember(io.RawIOBase):
    """A zip member stored uncompressed, read straight from the archive file.

    Its bytes lie as they are in the zip, after a local header of 30 bytes, the
    file name and an "extra" field; this file object shows just those bytes, so
    h5py reads them at the speed of a plain file (zipfile's own member object
    re-reads from the start on every backward seek).
    """

    def __init__(self, raw, info: zipfile.ZipInfo):
        super().__init__()
        raw.seek(info.header_offset)
        header = raw.read(30)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self._raw = raw
        self._start = info.header_offset + 30 + name_length + extra_length
        self._size = info.file_size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._pos))
        self._raw.seek(self._start + self._pos)
        count = self._raw.readinto(memoryview(buffer)[:count])
        self._pos += count
        return count


def _conv_names(expected: dict | None) -> list[str] | None:
    """The model's convolution layers in order: a 4-D ``<layer>.weight`` with a ``.bias``."""
    if expected is None:
        return None
    return [
        key[: -len(".weight")]
        for key, shape in expected.items()
        if key.endswith(".weight")
        and len(shape) == 4
        and key[: -len(".weight")] + ".bias" in expected
    ]


def _check_declared(layout: Layout, path: Path, expected: dict | None) -> None:
    """Check every dataset's declared shape and dtype; read nothing.

    Against the model first (the clearest message: which key, expected vs found),
    then each array on its own: a numeric dtype, and a bias with one value per
    output channel of its kernel.
    """
    declared = {entry.key: entry for entry in layout.entries}
    if expected is not None:
        check_state_dict(expected, declared, path)
    for entry in layout.entries:
        allowed = "f" if layout.name.startswith("keras") else "fiub"  # dtype kinds
        if entry.dtype.kind not in allowed:
            what = "floating-point" if allowed == "f" else "numeric"
            raise WeightsError(
                f"{path}: '{entry.key}' ({entry.source}) has dtype {entry.dtype}; "
                f"expected {what} values"
            )
        layer, _, kind = entry.key.rpartition(".")
        kernel = declared.get(f"{layer}.weight")
        is_conv_bias = kind == "bias" and kernel is not None and len(kernel.shape) == 4
        if is_conv_bias and entry.shape != kernel.shape[:1]:
            raise WeightsError(
                f"{path}: layer '{layer}': kernel {kernel.source} declares shape "
                f"{kernel.shape} ({kernel.shape[0]} output channels) but bias "
                f"{entry.source} declares {entry.shape}; expected ({kernel.shape[0]},)"
            )


def _describe(path: Path, layout_name: str, layout: Layout, metadata: dict) -> WeightsFile:
    arrays = {e.key: ArrayInfo(e.shape, e.dtype, e.source) for e in layout.entries}
    return WeightsFile(
        path, layout_name, arrays, ignored=layout.ignored,
        metadata=layout.metadata or metadata, notes=layout.notes,
    )  # fmt: skip


def _read(entry: Entry, path: Path) -> np.ndarray:
    """Read one dataset into memory in minidl's order, turning HDF5 errors into WeightsError."""
    try:
        array = np.asarray(entry.dataset[()])  # asarray: a scalar dataset becomes a 0-d array
    except (OSError, KeyError, ValueError) as e:
        raise WeightsError(
            f"{path}: cannot read '{entry.source}' (is the file truncated?): {e}"
        ) from e
    if entry.axes is not None:
        array = np.ascontiguousarray(array.transpose(entry.axes))
    return array
