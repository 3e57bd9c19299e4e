"""What every lesson shares: its command line, its checks and its figures.

A lesson starts with::

    from _common import check, finish, savefig, setup
    args = setup("03_transposed_convolution", "what it teaches", devices=("cpu", "cuda-emu", "cuda"))

``setup(lesson, description, devices=("cpu",), extra=None) -> argparse.Namespace``
    ``lesson`` is the lesson's file name without ``.py`` (a path such as ``__file__``
    works too, but a notebook kernel has no ``__file__``, so the lessons spell it out).
    Parses ``--quick`` (small sizes, for the tests), ``--device`` (one of
    ``devices``; only offered when the lesson lists more than one) and ``--out``
    (default ``lessons/out/NN/``, NN from the lesson's file name).  ``args.out`` is a
    ``Path`` that exists.  ``extra(parser)`` may add lesson-specific options.
    A device that cannot run here (no GPU, no compiler) is a one-line error, exit 2.
    Also selects matplotlib's Agg backend, so figures never need a display.
    In a notebook (Jupyter / VS Code), the kernel's own argv is ignored (defaults),
    and figures are shown inline as well as saved.

``check(claim, actual, expected=None, *, atol=1e-10, rtol=0.0) -> float``
    With ``expected``: asserts ``|actual - expected| <= atol + rtol |expected|``
    element-wise (Tensors, arrays, lists or numbers; shapes must match) and prints
    ``check: <claim>  ok (max err 2e-16)``.  Without: ``actual`` is a truth value
    and the line reads ``check: <claim>  ok``.  A failed check raises
    ``AssertionError`` naming the claim and the error, so the lesson exits non-zero.
    Returns the max error (0.0 for truth checks).

``available(device) -> (bool, reason)``
    Whether ``device`` runs here: cpu always; cuda needs CuPy and a GPU; cuda-emu a
    C++ compiler.

``savefig(fig, args, name) -> Path``
    Writes ``args.out / name`` atomically (temporary file, then rename), closes the
    figure and prints ``figure: <path>``.

``weights_path(args) -> Path``
    The real VGG16 weight file (``minidl.weights.find_weights()``: ``MINIDL_WEIGHTS``,
    ``weights/``, the user cache).  Without one, prints one line saying how to get it
    and exits with code 3 (``WEIGHTS_MISSING``); tests/test_lessons.py skips a lesson
    that calls ``weights_path(`` when no weights are found.

``finish(args)``
    Prints how many checks passed and how long the lesson took.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend and shows the figures
    matplotlib.use("Agg")

WEIGHTS_MISSING = 3  # exit code of a lesson that needs the real VGG16 weights and finds none
_START = time.perf_counter()
_CHECKS = 0


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def available(device: str) -> tuple[bool, str]:
    """(True, why) if ``device`` can run in this process, else (False, why not)."""
    if device == "cpu":
        return True, "numpy"
    if device == "cuda":
        from minidl.backends.cuda import cuda_available

        return cuda_available()
    if device == "cuda-emu":
        from minidl.backends.emulated import emulator_available

        return emulator_available()
    return False, f"unknown device {device!r}"


def setup(lesson: str, description: str, devices=("cpu",), extra=None) -> argparse.Namespace:
    """Parse the lesson's options; make its output folder; see the module docstring."""
    lesson = Path(lesson).stem
    number = lesson.split("_", 1)[0]
    parser = argparse.ArgumentParser(prog=f"python lessons/{lesson}.py", description=description)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few iterations (seconds; used by the tests)")
    if len(devices) > 1:
        parser.add_argument("--device", choices=devices, default="cpu",
                            help="where the tensors live (default: cpu)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / number,
                        help=f"folder for the figures (default: lessons/out/{number}/)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args([] if _in_notebook() else None)
    if len(devices) == 1:
        args.device = devices[0]
    ok, why = available(args.device)
    if not ok:
        parser.exit(2, f"{parser.prog}: error: --device {args.device} cannot run here: {why}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    args.lesson = lesson
    print(f"{lesson}: device {args.device}{', quick' if args.quick else ''}; figures in {args.out}")
    return args


def _as_array(value) -> np.ndarray:
    if hasattr(value, "numpy") and callable(value.numpy):  # a minidl Tensor (any device)
        value = value.numpy()
    return np.asarray(value, dtype=np.float64)


def check(claim: str, actual, expected=None, *, atol: float = 1e-10, rtol: float = 0.0) -> float:
    """Assert a claim the lesson's text makes and print it; see the module docstring."""
    global _CHECKS
    if expected is None:
        if not bool(actual):
            raise AssertionError(f"check failed: {claim}")
        print(f"check: {claim}  ok")
        _CHECKS += 1
        return 0.0
    a, e = _as_array(actual), _as_array(expected)
    if a.shape != e.shape:
        raise AssertionError(f"check failed: {claim}: shapes differ, {a.shape} vs {e.shape}")
    err = float(np.max(np.abs(a - e))) if a.size else 0.0
    bound = atol + rtol * np.abs(e)
    if not np.all(np.abs(a - e) <= bound):
        raise AssertionError(f"check failed: {claim}: max err {err:.3g} > tolerance "
                             f"(atol {atol:g}, rtol {rtol:g})")
    print(f"check: {claim}  ok (max err {err:.2g})")
    _CHECKS += 1
    return err


def savefig(fig, args: argparse.Namespace, name: str) -> Path:
    """Write the figure to ``args.out / name`` atomically, close it (except in a notebook),
    name it in the console."""
    import matplotlib.pyplot as plt

    path = Path(args.out) / name
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=60 if args.quick else 110, bbox_inches="tight")  # quick: tests
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not _in_notebook():  # a notebook displays the open figure under the cell
            plt.close(fig)
    print(f"figure: {path}")
    return path


def weights_path(args: argparse.Namespace) -> Path:
    """The VGG16 weight file, or exit(WEIGHTS_MISSING) with one line saying how to get it."""
    from minidl.weights import find_weights

    try:
        return find_weights()
    except FileNotFoundError as error:
        print(f"{args.lesson} needs the real VGG16 weights: run `minidl weights fetch vgg16` or set "
              f"MINIDL_WEIGHTS ({str(error).splitlines()[0]})", file=sys.stderr)
        sys.exit(WEIGHTS_MISSING)


def finish(args: argparse.Namespace) -> None:
    """Print the summary line: checks passed and seconds taken."""
    seconds = time.perf_counter() - _START
    print(f"{args.lesson}: all {_CHECKS} checks passed in {seconds:.1f} s")
