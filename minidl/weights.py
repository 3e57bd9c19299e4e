"""Weight files: read them, write them, find them, download them.

A *state_dict* in minidl is a plain ``dict`` that maps a name to a NumPy array::

    {"block1_conv1.weight": array of shape (64, 3, 3, 3),   # (C_out, C_in, kh, kw)
     "block1_conv1.bias":   array of shape (64,),
     ...}

This module turns three kinds of HDF5 file into such a dict:

``keras2``
    The Keras 2 "legacy" layout, used by the official VGG16 file
    ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``.  The root attribute
    ``layer_names`` lists the layers; each layer is a group whose attribute
    ``weight_names`` lists its datasets (kernel first, then bias).  Keras stores
    a convolution kernel as (kh, kw, C_in, C_out); we transpose it to minidl's
    (C_out, C_in, kh, kw).
``keras3``
    The Keras 3 ``.weights.h5`` layout: ``layers/<name>/vars/0`` is the kernel,
    ``layers/<name>/vars/1`` the bias.
``minidl``
    minidl's own layout, written by :func:`save_state_dict`: one dataset per
    state_dict key and the root attributes ``minidl_format`` and
    ``format_version``.

From the Keras files only *convolution* layers are read (4-D kernel + bias):
minidl's VGG16 is a feature extractor.  Any other layer that has weights, such
as the dense layers ``fc1``, ``fc2`` and ``predictions`` of the "with top" file,
is skipped and reported (``WeightsFile.ignored``), never dropped silently.

Every problem raises :class:`WeightsError` with a message that names the file,
and the layer or key when there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

import h5py
import numpy as np

from minidl.paths import user_cache_dir

# ---------------------------------------------------------------------------
# Errors and the result of reading a file
# ---------------------------------------------------------------------------

MINIDL_FORMAT = "minidl-state-dict"  # value of the root attribute ``minidl_format``
FORMAT_VERSION = 1  # bump when the minidl layout changes

LAYOUT_DESCRIPTIONS = {
    "keras2": "Keras 2 legacy HDF5 (kernels (kh, kw, in, out) -> (out, in, kh, kw))",
    "keras3": "Keras 3 .weights.h5 (kernels (kh, kw, in, out) -> (out, in, kh, kw))",
    "minidl": f"minidl state_dict, format version {FORMAT_VERSION}",
}


class WeightsError(ValueError):
    """A weight file is missing, unreadable, of unknown layout, or has bad values."""


class DownloadError(RuntimeError):
    """Downloading a weight file failed (offline, HTTP error, cut off, wrong hash)."""


@dataclass
class WeightsFile:
    """Everything :func:`read_weights` learned about one file.

    Attributes:
        path: the file that was read.
        layout: ``"keras2"``, ``"keras3"`` or ``"minidl"``.
        state_dict: name -> NumPy array, in minidl's conventions.
        ignored: names of layers that have weights but were not read
            (for example ``["fc1", "fc2", "predictions"]``).
        metadata: the ``metadata`` given to :func:`save_state_dict` (minidl files
            only; empty otherwise).
    """

    path: Path
    layout: str
    state_dict: dict[str, np.ndarray]
    ignored: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    @property
    def num_parameters(self) -> int:
        """Total number of values in all arrays."""
        return sum(int(a.size) for a in self.state_dict.values())


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def load_weights(path: str | os.PathLike, verbose: bool = True) -> dict[str, np.ndarray]:
    """Read a weight file of any supported layout and return its state_dict.

    Layers that were skipped (such as the dense layers of a "with top" VGG16
    file) are printed as ``ignored: fc1, fc2, predictions`` unless
    ``verbose=False``.  Use :func:`read_weights` to get them as a list instead.
    """
    weights = read_weights(path)
    if weights.ignored and verbose:
        print(f"{weights.path}: ignored: {', '.join(weights.ignored)} (not convolution layers)")
    return weights.state_dict


def read_weights(path: str | os.PathLike) -> WeightsFile:
    """Read a weight file, detect its layout, and return a :class:`WeightsFile`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weight file")
    if not h5py.is_hdf5(path):
        raise WeightsError(f"{path}: not an HDF5 file (expected a .h5 weight file)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:  # e.g. "truncated file: eof = ..."
        raise WeightsError(f"{path}: cannot open HDF5 file, it may be truncated: {e}") from e
    with f:
        if "minidl_format" in f.attrs:
            weights = _read_minidl(f, path)
        elif "layer_names" in f.attrs:
            weights = _read_keras2(f, path)
        elif "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            # A whole Keras 2 model saved with model.save(): weights live one level down.
            weights = _read_keras2(f["model_weights"], path)
        elif "layers" in f and isinstance(f["layers"], h5py.Group):
            weights = _read_keras3(f, path)
        else:
            raise WeightsError(
                f"{path}: unknown weight layout; expected a Keras 2 file (root attribute "
                f"'layer_names'), a Keras 3 .weights.h5 file (group 'layers') or a minidl "
                f"file (root attribute 'minidl_format'); found top-level entries "
                f"{sorted(f.keys())} and attributes {sorted(f.attrs.keys())}"
            )
    for key, array in weights.state_dict.items():
        _check_finite(array, path, key)
    return weights


def _read_keras2(root: h5py.Group, path: Path) -> WeightsFile:
    """Keras 2 legacy layout: root attr ``layer_names``, per-layer attr ``weight_names``."""
    state, ignored = {}, []
    for layer in _strings(root.attrs["layer_names"]):
        if layer not in root:
            raise WeightsError(f"{path}: layer '{layer}' is listed in 'layer_names' but missing")
        group = root[layer]
        names = _strings(group.attrs.get("weight_names", []))
        # Follow weight_names exactly: some files nest them, e.g. "block1_conv1/kernel:0".
        arrays = []
        for name in names:
            if name not in group:
                raise WeightsError(f"{path}: layer '{layer}': dataset '{name}' is missing")
            arrays.append(_read_dataset(group[name], path, f"{layer}/{name}"))
        _add_layer(state, ignored, layer, arrays)
    return WeightsFile(path, "keras2", state, ignored)


def _read_keras3(f: h5py.File, path: Path) -> WeightsFile:
    """Keras 3 layout: ``layers/<name>/vars/0`` (kernel) and ``vars/1`` (bias)."""
    state, ignored = {}, []
    for layer, group in f["layers"].items():
        if "vars" not in group:
            if len(group):  # e.g. a nested model: something we do not read, so report it
                ignored.append(layer)
            continue
        variables = group["vars"]
        arrays = []
        for i in range(len(variables)):  # vars are named "0", "1", ... in order
            if str(i) not in variables:
                raise WeightsError(f"{path}: layer '{layer}': dataset 'vars/{i}' is missing")
            arrays.append(_read_dataset(variables[str(i)], path, f"layers/{layer}/vars/{i}"))
        _add_layer(state, ignored, layer, arrays)
    return WeightsFile(path, "keras3", state, ignored)


def _add_layer(state: dict, ignored: list, layer: str, arrays: list[np.ndarray]) -> None:
    """Put one Keras layer into ``state`` if it is a convolution, else note it as ignored.

    A Keras convolution has a kernel (kh, kw, C_in, C_out) and a bias (C_out,);
    minidl (like PyTorch) wants (C_out, C_in, kh, kw), hence ``transpose(3, 2, 0, 1)``.
    """
    if not arrays:  # input, pooling, flatten: nothing to load
        return
    # A convolution: a 4-D kernel and a bias with one value per output channel.
    is_conv = len(arrays) == 2 and arrays[0].ndim == 4 and arrays[1].shape == arrays[0].shape[3:]
    if not is_conv:
        ignored.append(layer)
        return
    kernel, bias = arrays
    state[f"{layer}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    state[f"{layer}.bias"] = bias


def _read_minidl(f: h5py.File, path: Path) -> WeightsFile:
    """minidl layout: one dataset per key (keys may contain '/' for nested groups)."""
    version = int(f.attrs.get("format_version", -1))
    if f.attrs["minidl_format"] != MINIDL_FORMAT or version > FORMAT_VERSION:
        raise WeightsError(
            f"{path}: minidl format {f.attrs['minidl_format']!r} version {version} is not "
            f"supported (this minidl reads {MINIDL_FORMAT!r} up to version {FORMAT_VERSION})"
        )
    state = {}

    def walk(group: h5py.Group, prefix: str) -> None:
        for name, obj in group.items():  # in the order they were written
            if isinstance(obj, h5py.Group):
                walk(obj, f"{prefix}{name}/")
            else:
                state[prefix + name] = _read_dataset(obj, path, prefix + name)

    walk(f, "")
    metadata = json.loads(f.attrs.get("metadata", "{}"))
    return WeightsFile(path, "minidl", state, metadata=metadata)


def _read_dataset(dataset: h5py.Dataset, path: Path, name: str) -> np.ndarray:
    """Read one dataset into memory, turning low-level HDF5 errors into WeightsError."""
    try:
        return np.asarray(dataset[()])  # asarray: a scalar dataset becomes a 0-d array
    except (OSError, KeyError) as e:
        raise WeightsError(f"{path}: cannot read '{name}' (is the file truncated?): {e}") from e


def _check_finite(array: np.ndarray, path, key: str) -> None:
    """Raise if a floating-point array holds NaN or Inf."""
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise WeightsError(f"{path}: '{key}' contains {bad} NaN/Inf value(s)")


def _strings(values) -> list[str]:
    """HDF5 attributes hold names as bytes (b'block1_conv1'); return them as str."""
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


# ---------------------------------------------------------------------------
# Checking a state_dict against what a model expects
# ---------------------------------------------------------------------------


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
# Writing minidl's own format
# ---------------------------------------------------------------------------


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
        _check_finite(array, path, key)  # a file we could not load back is no use
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
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


# ---------------------------------------------------------------------------
# Finding and downloading the VGG16 file
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsSource:
    """Where a named set of weights comes from and what it is called on disk."""

    filename: str
    url: str
    md5: str
    pattern: str  # other file names accepted by find_weights, e.g. "vgg16*.h5"


SOURCES = {
    "vgg16": WeightsSource(
        filename="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5="6d6bbae143d832006294945121d1f1fc",
        pattern="vgg16*.h5",
    ),
}

# The repository's weights/ folder: the parent of the minidl package, plus "weights".
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_WEIGHTS_DIR = PROJECT_ROOT / "weights"


def cache_dir() -> Path:
    """The per-user cache folder, where weights are looked for and fetched to."""
    return user_cache_dir()


def default_weights_dir() -> Path:
    """Where ``fetch`` saves by default: the project's weights/ folder in a source
    checkout (next to pyproject.toml), else the user cache folder."""
    if (PROJECT_WEIGHTS_DIR.parent / "pyproject.toml").exists():
        return PROJECT_WEIGHTS_DIR
    return cache_dir()


def _source(name: str) -> WeightsSource:
    if name not in SOURCES:
        raise ValueError(f"unknown weights {name!r}; available: {', '.join(SOURCES)}")
    return SOURCES[name]


def find_weights(name: str = "vgg16") -> Path:
    """Return the path of a weight file, looking in this order:

    1. the environment variable ``MINIDL_WEIGHTS`` (a file, or a folder to search);
    2. the project's ``weights/`` folder;
    3. the user cache folder (``$XDG_CACHE_HOME/minidl`` or ``~/.cache/minidl``).

    In each folder the official file name is preferred, then any ``vgg16*.h5``.
    Raises FileNotFoundError listing every place looked at.
    """
    source = _source(name)
    looked = []
    env = os.environ.get("MINIDL_WEIGHTS")
    if env:
        env_path = Path(env).expanduser()
        if env_path.is_file():
            return env_path
        if not env_path.is_dir():
            # An explicit setting that points nowhere is a mistake: say so, don't fall back.
            raise FileNotFoundError(f"MINIDL_WEIGHTS={env} but no such file or folder exists")
        folders = [env_path, PROJECT_WEIGHTS_DIR, cache_dir()]
    else:
        looked.append("MINIDL_WEIGHTS (not set)")
        folders = [PROJECT_WEIGHTS_DIR, cache_dir()]
    for folder in folders:
        candidates = [folder / source.filename, *sorted(folder.glob(source.pattern))]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked.append(f"{folder}/{{{source.filename}, {source.pattern}}}")
    raise FileNotFoundError(
        f"no {name} weights found; looked in:\n  "
        + "\n  ".join(looked)
        + f"\nRun `minidl weights fetch {name}` or set MINIDL_WEIGHTS=/path/to/file.h5"
    )


def fetch(
    name: str = "vgg16",
    directory: str | os.PathLike | None = None,
    url: str | None = None,
    md5: str | None = None,
) -> Path:
    """Download a weight file, check its MD5 hash, and return its path.

    Args:
        name: which weights (only ``"vgg16"``: Keras' VGG16 "notop" file).
        directory: where to save; default :func:`default_weights_dir`.
        url, md5: override the official address and hash (tests use a local server).

    The download goes to a temporary file in the same folder, which is renamed
    only after the hash matched; on any failure it is deleted and a
    DownloadError says how to put the file in place by hand.  An existing
    file is never overwritten: if it reads as a weight file it is returned,
    otherwise (say, an interrupted copy by hand) the error asks to delete it.
    """
    source = _source(name)
    url = url or source.url
    md5 = md5 or source.md5
    directory = Path(directory) if directory is not None else default_weights_dir()
    target = directory / source.filename
    if target.exists():
        try:
            read_weights(target)
        except (WeightsError, OSError) as error:
            raise DownloadError(
                f"{target} already exists but is not a usable weight file ({error}); "
                "delete it and run again"
            ) from None
        print(f"{target} already exists; not downloading again")
        return target
    directory.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(target)
    try:
        with open(tmp, "wb") as out:
            digest = _download(url, out)
        if digest != md5:
            raise DownloadError(f"MD5 mismatch: expected {md5}, got {digest}")
        os.replace(tmp, target)
    # URLError (offline, HTTP 404, ...), timeouts and dropped connections are OSErrors.
    except (DownloadError, HTTPException, OSError) as e:
        raise DownloadError(
            f"could not download {name} weights from {url}: {e}\n"
            f"To install them by hand, download\n  {url}\nand save it as\n  {target}\n"
            f"or set MINIDL_WEIGHTS=/path/to/the/file.h5"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"saved {target}")
    return target


def _temporary_name(path: Path) -> Path:
    """A hidden name next to ``path`` to write to before renaming, e.g. ``.model.h5.1234.tmp``.

    Same folder, so the final ``os.replace`` is a rename, which is atomic;
    the process id keeps two programs writing the same file apart.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _download(url: str, out, chunk_size: int = 1 << 16) -> str:
    """Copy ``url`` into the open file ``out`` with a progress bar; return the MD5 hex digest.

    Raises DownloadError if the server closes the connection before sending
    the number of bytes it announced in Content-Length.
    """
    from tqdm import tqdm  # imported here: only downloads need it

    md5 = hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name) as bar:
            while chunk := response.read(chunk_size):
                out.write(chunk)
                md5.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise DownloadError(f"connection closed after {received} of {total} bytes")
    return md5.hexdigest()


# ---------------------------------------------------------------------------
# The `minidl weights` command
# ---------------------------------------------------------------------------


def register(subparsers) -> None:
    """Add ``minidl weights fetch [NAME] [--dir D]`` and ``minidl weights info FILE``."""
    parser = subparsers.add_parser("weights", help="download and inspect weight files")

    def show_help(args: argparse.Namespace) -> int:  # `minidl weights` with no action
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)
    commands = parser.add_subparsers(dest="weights_command", metavar="ACTION")

    p = commands.add_parser("fetch", help="download pretrained weights and check their hash")
    p.add_argument("name", nargs="?", default="vgg16", choices=sorted(SOURCES))
    p.add_argument(
        "--dir",
        help="folder to save into (default: weights/ of the source checkout, "
        "else the user cache folder)",
    )
    p.set_defaults(func=_cmd_fetch)

    p = commands.add_parser("info", help="show the layout, arrays and parameter count of a file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_info)


def _cmd_fetch(args: argparse.Namespace) -> int:
    try:
        fetch(args.name, directory=args.dir)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        weights = read_weights(args.file)
    except (WeightsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"file:    {weights.path}")
    print(f"layout:  {LAYOUT_DESCRIPTIONS[weights.layout]}")
    if weights.metadata:
        print(f"metadata: {json.dumps(weights.metadata)}")
    width = max((len(k) for k in weights.state_dict), default=0)
    for key, array in weights.state_dict.items():
        shape = str(tuple(array.shape))
        print(f"  {key:<{width}}  {shape:<20} {array.dtype!s:<8} {array.size:>12,}")
    print(f"{len(weights.state_dict)} arrays, {weights.num_parameters:,} parameters")
    if weights.ignored:
        print(f"ignored: {', '.join(weights.ignored)} (not convolution layers)")
    return 0
