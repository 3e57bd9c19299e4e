"""What every long run shares: safe output files, the ``--log`` JSON, Ctrl-C, memory.

The algorithms (:mod:`minidl.style`, :mod:`minidl.inversion`) and their commands
use these pieces so that every run behaves the same way:

* :func:`atomic_save_image` / :func:`atomic_write_json` write to a temporary
  file in the destination folder and then ``os.replace`` it, so a reader never
  sees half a file and an existing output is only replaced by a finished one.
* :class:`RunLog` collects one row per iteration (loss parts and the seconds
  since the work started) and writes the ``--log`` JSON, whose keys are a
  contract that tools and lessons read::

      {"command", "args", "device", "iterations": [{"i", "loss", ..., "seconds"}],
       "final": {...}, "seconds", "seconds_per_iteration", "peak_rss_mb"}

* :class:`RunInterrupted` is what an algorithm raises on Ctrl-C: it carries the
  best image so far, which the command writes to :func:`interrupted_path`
  before exiting with status 130.
* :func:`resolve_image` turns a path or a bundled name (``grace_hopper``,
  ``starry_night``, ...) into an image array, with an error that lists the names.
* :func:`check_output_path` refuses an output before any work is done: unknown
  suffix, or a folder that does not exist.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minidl.backends import DEVICES
from minidl.image import SAVE_FORMATS, load_image, resize_image, save_image


def atomic_save_image(path, img) -> Path:
    """Save ``img`` to ``path`` (PNG or JPEG by suffix) through a temporary file + rename."""
    path = Path(path)
    with _temporary_beside(path) as tmp:
        save_image(tmp, img)
    return path


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file + rename."""
    path = Path(path)
    with _temporary_beside(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    return path


class _temporary_beside:
    """A temporary file next to ``path`` (same folder, same suffix), renamed onto
    ``path`` when the ``with`` block succeeds and removed when it fails."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent or "."
        )
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp made it private (0600)
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def peak_rss_mb() -> float:
    """The largest resident memory this process has had so far, in MB.

    Linux: VmHWM of /proc/self/status (ru_maxrss can carry the value of the
    process that spawned this one); elsewhere ru_maxrss (macOS bytes, BSD kB).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def resolve_image(spec, max_side: int | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 image from a uint8 array, a file path, or a bundled name.

    An existing file wins over a bundled name.  With ``max_side`` the image is
    resized so its longer side has that many pixels.  Raises ``ValueError`` (a
    name that is neither a file nor bundled: the message lists the names; an
    unreadable file) or ``TypeError`` (an array that is not uint8 RGB).
    """
    from minidl.data import NAMES, NAMES_TEXT, sample

    if isinstance(spec, np.ndarray):
        if spec.dtype != np.uint8 or spec.ndim != 3 or spec.shape[2] != 3:
            raise TypeError(
                f"expected an (H, W, 3) uint8 image, got shape {spec.shape} dtype {spec.dtype}"
            )
        return resize_image(spec, max_side) if max_side else spec
    spec = str(spec)
    if Path(spec).is_file():
        return load_image(spec, max_side=max_side)
    if spec in NAMES:
        return sample(spec, max_side=max_side)
    raise ValueError(
        f"{spec}: no such image file, and not a bundled image name ({NAMES_TEXT})"
    )


def check_output_path(path, what: str = "output") -> Path:
    """Refuse an output path before any work: its folder must exist, its suffix be an
    image format.  Returns it as a Path."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(
            f"{what} {path}: unknown image suffix {path.suffix!r}; use one of "
            f"{', '.join(SAVE_FORMATS)}"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{what} {path}: folder {folder} does not exist")
    return path


def check_log_path(path) -> Path:
    """The ``--log`` file: a ``.json`` in an existing folder."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"--log {path}: expected a .json file name")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise ValueError(f"--log {path}: folder {path.parent} does not exist")
    return path


def numbered_path(out, i: int) -> Path:
    """Where ``--save-every`` writes iteration ``i``: OUT.png -> OUT_0100.png."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{i:04d}{out.suffix}")


def interrupted_path(out) -> Path:
    """Where Ctrl-C leaves the best image so far: OUT.png -> OUT_interrupted.png
    (an existing OUT is only ever replaced by a finished result)."""
    out = Path(out)
    return out.with_name(f"{out.stem}_interrupted{out.suffix}")


class RunInterrupted(Exception):
    """Ctrl-C during a run: ``image`` is the best image so far (uint8), ``log`` the
    log dictionary up to that point."""

    def __init__(self, image: np.ndarray, log: dict):
        super().__init__("interrupted")
        self.image, self.log = image, log


class RunLog:
    """Per-iteration rows and timings of one run, in the ``--log`` JSON layout.

    >>> log = RunLog("stylize", {"size": 64}, "cpu")
    >>> log.start()                      # the work begins (after loading, set-up)
    >>> log.add(1, loss=2.0, content=1.0, style=0.5, tv=0.5)
    >>> log.finish(loss=2.0, content=1.0, style=0.5, tv=0.5)["final"]["loss"]
    2.0
    """

    def __init__(self, command: str, args: dict, device: str):
        self.command, self.args, self.device = command, dict(args), device
        self.rows: list[dict] = []
        self.extra: dict = {}
        self.final: dict = {}
        self._started = time.perf_counter()
        self.seconds = 0.0

    def start(self) -> None:
        """Mark the start of the work that "seconds" measures."""
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def add(self, i: int, **values) -> dict:
        """Record iteration ``i`` with its values (floats) and the seconds so far."""
        row = {"i": int(i)}
        row.update({k: v if isinstance(v, (int, np.integer)) else float(v)
                    for k, v in values.items()})
        row["seconds"] = round(self.elapsed(), 4)
        self.rows.append(row)
        return row

    def finish(self, **final) -> dict:
        """Record the final values and the total time; return :meth:`to_dict`."""
        self.final = {k: float(v) if isinstance(v, (float, np.floating)) else v
                      for k, v in final.items()}
        self.seconds = self.elapsed()
        return self.to_dict()

    def to_dict(self) -> dict:
        seconds = self.seconds or self.elapsed()
        return {
            "command": self.command,
            "args": self.args,
            "device": self.device,
            "iterations": list(self.rows),
            "final": dict(self.final),
            "seconds": round(seconds, 4),
            "seconds_per_iteration": round(seconds / max(len(self.rows), 1), 5),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            **self.extra,
        }

    def write(self, path) -> Path:
        return atomic_write_json(path, self.to_dict())


def add_vgg16_options(parser) -> None:
    """The options every VGG16 command shares: ``--device``, and where the weights come
    from (``--weights PATH`` or ``--random``); :func:`vgg16_weights` reads them back."""
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="PATH",
                        help="VGG16 weights (default: found via MINIDL_WEIGHTS or weights/)")
    source.add_argument("--random", action="store_true",
                        help="an untrained VGG16 (for tests: the pictures mean nothing)")


def vgg16_weights(args):
    """What :func:`load_vgg16` takes for the options of :func:`add_vgg16_options`."""
    return "random" if args.random else args.weights


def load_vgg16(weights=None, *, pooling: str = "max", device: str = "cpu"):
    """VGG16 for an algorithm: ``weights`` is None or "auto" (the file
    :func:`minidl.weights.find_weights` finds), "random" (untrained, for tests and
    comparisons), a path, or an already built :class:`~minidl.models.VGG16`.

    Every failure is a one-line ``ValueError`` saying how to get the weights.
    """
    from minidl.models.vgg16 import VGG16, vgg16

    if isinstance(weights, VGG16):
        if weights.pooling != pooling:
            raise ValueError(f"the given VGG16 uses {weights.pooling} pooling, not {pooling}")
        return weights.to(device)
    if weights is None or str(weights) == "auto":
        from minidl.weights import find_weights

        try:
            weights = find_weights()
        except FileNotFoundError as e:
            first = str(e).splitlines()[0]
            raise ValueError(
                f"VGG16 weights not found ({first}); run `minidl weights fetch vgg16` "
                f"or set MINIDL_WEIGHTS=/path/to/vgg16_notop.h5"
            ) from e
    elif str(weights) == "random":
        weights = None
    elif not Path(weights).is_file():
        raise ValueError(
            f"weights file {weights} not found; run `minidl weights fetch vgg16` "
            f"or set MINIDL_WEIGHTS=/path/to/vgg16_notop.h5"
        )
    try:
        return vgg16(weights=weights, pooling=pooling, device=device)
    except ValueError as e:  # minidl.weights.WeightsError: a damaged or foreign file
        raise ValueError(" ".join(str(e).split())) from e


# ---------------------------------------------------------------- for the commands


def fail(command: str, message: str) -> int:
    """Print a one-line error for ``minidl COMMAND`` and return exit status 2."""
    print(f"minidl {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def parse_list(text, convert=str, option: str = "list") -> list:
    """"a,b,c" -> [convert(a), convert(b), convert(c)]; ValueError naming the option."""
    if text is None:
        return None
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ValueError(f"{option}: cannot read {text!r} as a comma-separated list of "
                         f"{convert.__name__}s") from None


def save_interrupted(command: str, out, stopped: RunInterrupted, log_path=None) -> int:
    """Write the best image of an interrupted run (and its log); return status 130."""
    path = atomic_save_image(interrupted_path(out), stopped.image)
    if log_path:
        atomic_write_json(log_path, stopped.log)
    rows = stopped.log.get("iterations") or [{}]
    print(f"\nminidl {command}: interrupted after iteration {rows[-1].get('i', 0)}; "
          f"best image so far written to {path}", file=sys.stderr)
    return 130
