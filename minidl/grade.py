"""The exercise grader: ``python -m minidl.grade NN`` (or ``minidl grade NN``).

Each exercise file ``lessons/exercises/NN_*.py`` holds functions whose bodies a
student writes.  For every *part* (one function) the grader

1. runs the student's function on a few inputs and compares the result with the
   library's own function, the *solution*, named in the report (for example
   ``minidl.functional.conv_transpose2d``);
2. where the function should be differentiable, runs ``minidl.gradcheck`` on it
   (float64, central differences), so a result that is right but built outside
   autograd, or a hand-written backward that is wrong, is caught too;

and prints one line per part: ``pass``, ``FAIL`` with the case and the error, or
``not done`` while the body still raises ``NotImplementedError``.  Exit code 0
when every part passes, 1 otherwise, 2 for a bad command line (unknown exercise,
missing file).  The parts and their inputs are in :mod:`minidl.exercises`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

import numpy as np

from minidl.exercises import EXERCISES, Part
from minidl.gradcheck import GradcheckError, gradcheck
from minidl.tensor import Tensor


def exercises_dir() -> Path:
    """lessons/exercises of the checkout minidl runs from, else of the current folder."""
    checkout = Path(__file__).resolve().parent.parent / "lessons" / "exercises"
    return checkout if checkout.is_dir() else Path.cwd() / "lessons" / "exercises"


def exercise_file(number: str, folder: Path | None = None) -> Path:
    """The file ``NN_*.py`` of exercise ``number`` in ``folder``; FileNotFoundError if none."""
    folder = folder or exercises_dir()
    found = sorted(folder.glob(f"{number}_*.py"))
    if not found:
        raise FileNotFoundError(f"no exercise file {number}_*.py in {folder}")
    return found[0]


def load_student(path: Path):
    """Import the student's file as a fresh module (not cached: a re-run sees edits)."""
    spec = importlib.util.spec_from_file_location(f"minidl_exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve(dotted: str):
    """The object named ``package.module.attr`` (the solution a part is checked against)."""
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _as_arrays(value):
    """A result as a list of float64 arrays (tuples compared element by element)."""
    if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]) \
            and not isinstance(value[0], (list, tuple)):
        return [a for v in value for a in _as_arrays(v)]
    if isinstance(value, Tensor):
        value = value.numpy()
    return [np.asarray(value, dtype=np.float64)]


def _max_error(got, expected) -> tuple[float, str | None]:
    """(max |got - expected|, None) or (inf, why they cannot be compared)."""
    try:
        got, expected = _as_arrays(got), _as_arrays(expected)
    except (TypeError, ValueError) as error:
        return np.inf, f"result is not a number array ({error})"
    if len(got) != len(expected):
        return np.inf, f"returned {len(got)} values, expected {len(expected)}"
    worst = 0.0
    for g, e in zip(got, expected):
        if g.shape != e.shape:
            return np.inf, f"shape {g.shape}, expected {e.shape}"
        if g.size:
            worst = max(worst, float(np.max(np.abs(g - e))))
    return worst, None


class PartResult:
    """The outcome of one part: status is 'pass', 'FAIL' or 'not done'."""

    def __init__(self, part: Part, status: str, detail: str):
        self.part, self.status, self.detail = part, status, detail

    def line(self) -> str:
        return f"  {self.part.name:<26} {self.status:<9} {self.detail}"


def grade_part(part: Part, student_fn) -> PartResult:
    """Run one part: values on every case against the solution, then gradcheck."""
    if student_fn is None:
        return PartResult(part, "FAIL", f"the file defines no function {part.name}()")
    solution = resolve(part.solution)
    worst = 0.0
    for (label, args), (_, fresh) in zip(part.cases(), part.cases()):
        try:
            got = student_fn(*args)
        except NotImplementedError as error:
            return PartResult(part, "not done", f"({error})")
        except Exception as error:  # noqa: BLE001 -- any bug of the student's is reported, not raised
            where = traceback.extract_tb(error.__traceback__)[-1]
            return PartResult(part, "FAIL", f"case {label}: {type(error).__name__}: {error} "
                                            f"(line {where.lineno})")
        expected = part.reference(solution, *fresh)
        err, why = _max_error(got, expected)
        if why or err > part.atol:
            return PartResult(part, "FAIL", f"case {label}: {why or f'max err {err:.3g} > {part.atol:g}'}"
                                            f"  (solution: {part.solution})")
        worst = max(worst, err)
    detail = f"max err {worst:.2g} over {len(part.cases())} cases"
    if part.grad_inputs:
        failure = _gradcheck_part(part, student_fn)
        if failure:
            return PartResult(part, "FAIL", failure)
        detail += ", gradcheck ok"
    return PartResult(part, "pass", f"{detail}  (solution: {part.solution})")


def _gradcheck_part(part: Part, student_fn) -> str | None:
    """gradcheck the student's function on the first case; None, or why it fails."""
    label, args = part.cases()[0]
    args = list(args)
    for path in part.grad_inputs:
        if isinstance(path, tuple):  # a tensor inside a list argument: copy the list
            args[path[0]] = list(args[path[0]])

    def place(path, value):
        if isinstance(path, tuple):
            args[path[0]][path[1]] = value
        else:
            args[path] = value

    def get(path):
        return args[path[0]][path[1]] if isinstance(path, tuple) else args[path]

    leaves = [Tensor(np.array(get(p).numpy(), dtype=np.float64), requires_grad=True)
              for p in part.grad_inputs]

    def fn(*tensors):
        for path, t in zip(part.grad_inputs, tensors):
            place(path, t)
        out = student_fn(*args)
        if not isinstance(out, Tensor):
            raise GradcheckError(f"returned {type(out).__name__}, not a Tensor: autograd "
                                 "cannot differentiate it (use minidl ops on Tensors)")
        return out

    try:
        gradcheck(fn, leaves)
    except GradcheckError as error:
        return f"gradient, case {label}: {str(error).splitlines()[0]}"
    except Exception as error:  # noqa: BLE001 -- e.g. a backward that raises
        return f"gradient, case {label}: {type(error).__name__}: {error}"
    return None


def grade(number: str, path: Path) -> list[PartResult]:
    """Grade every part of exercise ``number`` in the student's file ``path``."""
    module = load_student(path)
    return [grade_part(part, getattr(module, part.name, None)) for part in EXERCISES[number].parts]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m minidl.grade", description=__doc__.split("\n")[0])
    parser.add_argument("number", metavar="NN", help=f"the exercise: {', '.join(EXERCISES)}")
    parser.add_argument("--file", type=Path, default=None,
                        help="the student's file (default: lessons/exercises/NN_*.py)")
    return parser


def run(args) -> int:
    number = args.number.zfill(2)
    if number not in EXERCISES:
        print(f"grade: no exercise {args.number!r}; exercises: {', '.join(EXERCISES)}", file=sys.stderr)
        return 2
    try:
        path = args.file or exercise_file(number)
    except FileNotFoundError as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    if not path.is_file():
        print(f"grade: --file {path}: no such file", file=sys.stderr)
        return 2
    exercise = EXERCISES[number]
    print(f"exercise {number}: {exercise.title} (lesson {exercise.lesson})\n  file: {path}")
    try:
        results = grade(number, path)
    except Exception as error:  # noqa: BLE001 -- a file that does not import is the student's error
        where = traceback.extract_tb(error.__traceback__)[-1]
        print(f"  cannot import the file: {type(error).__name__}: {error} (line {where.lineno})")
        return 1
    for result in results:
        print(result.line())
    passed = sum(r.status == "pass" for r in results)
    print(f"{passed} of {len(results)} parts pass")
    return 0 if passed == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
