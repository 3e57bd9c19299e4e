"""The course: every lesson runs (--quick) and writes the figures it names; the grader
tells a correct exercise solution from a broken one, naming the broken part.

Each lesson is a subprocess (as a student runs it), on cpu; lesson 04 also on
cuda-emu.  A lesson that calls ``weights_path(`` needs the real VGG16 weights and is
skipped without them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from devices import emulator_skip_reason

from minidl import grade
from minidl.exercises import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
SOLUTIONS = Path(__file__).resolve().parent / "exercise_solutions"


def _have_weights() -> bool:
    from minidl.weights import find_weights

    try:
        find_weights()
        return True
    except FileNotFoundError:
        return False


def _lesson_params():
    params = []
    for path in LESSONS:
        marks = [pytest.mark.weights] if "weights_path(" in path.read_text() else []
        params.append(pytest.param(path, "cpu", id=f"{path.stem}-cpu", marks=marks))
        if path.name.startswith("04_"):
            params.append(pytest.param(path, "cuda-emu", id=f"{path.stem}-cuda-emu"))
    return params


def test_the_course_has_lessons():
    numbers = [p.name[:2] for p in LESSONS]
    assert numbers[:6] == ["01", "02", "03", "04", "05", "06"], numbers
    assert len(set(numbers)) == len(numbers), f"two lessons share a number: {numbers}"


@pytest.mark.parametrize("lesson, device", _lesson_params())
def test_lesson_runs_quick_and_writes_its_figures(lesson, device, tmp_path):
    if "weights_path(" in lesson.read_text() and not _have_weights():
        pytest.skip("needs the real VGG16 weights (MINIDL_WEIGHTS or weights/)")
    reason = emulator_skip_reason() if device == "cuda-emu" else None
    if reason:
        pytest.skip(reason)
    command = [sys.executable, str(lesson), "--quick", "--out", str(tmp_path)]
    if device != "cpu":
        command += ["--device", device]
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{lesson.name} --device {device} failed:\n{output[-3000:]}"
    figures = re.findall(r"^figure: (.+)$", done.stdout, re.MULTILINE)
    assert figures, f"{lesson.name} names no figure:\n{output[-2000:]}"
    for figure in figures:
        path = Path(figure)
        assert path.is_file() and path.stat().st_size > 1000, f"{lesson.name}: {figure} missing or empty"
        assert path.parent == tmp_path, f"{lesson.name} wrote {figure} outside --out {tmp_path}"
    assert re.search(r"all \d+ checks passed", done.stdout), output[-2000:]
    assert "check: " in done.stdout


def _solution(number: str) -> Path:
    (path,) = SOLUTIONS.glob(f"{number}_*.py")
    return path


@pytest.mark.parametrize("number", list(EXERCISES))
def test_grader_passes_the_correct_solution(number, capsys):
    assert grade.main([number, "--file", str(_solution(number))]) == 0
    out = capsys.readouterr().out
    parts = EXERCISES[number].parts
    assert f"{len(parts)} of {len(parts)} parts pass" in out
    for part in parts:
        assert re.search(rf"^  {part.name}\s+pass", out, re.MULTILINE), out


def _broken(tmp_path, number, old, new) -> Path:
    """The correct solution of exercise ``number`` with one line changed."""
    source = _solution(number).read_text()
    assert old in source, f"test bug: {old!r} not in the solution of {number}"
    path = tmp_path / _solution(number).name
    path.write_text(source.replace(old, new))
    return path


@pytest.mark.parametrize("number, old, new, part, says", [
    # painting without cropping the padding: wrong shape
    ("03", "return out[:, :, padding:full_h - padding, padding:full_w - padding]", "return out",
     "conv_transpose2d", "shape"),
    # the remainder forgotten: wrong number
    ("03", "return (i + 2 * p - d * (k - 1) - 1) % s", "return 0", "output_padding_for", "max err"),
    # right values, but computed outside autograd: the gradient check catches it
    ("09", "    return (dy * dy).mean() + (dx * dx).mean()",
     "    return (dy * dy).mean().detach() + (dx * dx).mean().detach()", "tv_loss", "gradient"),
    # the texture loss summed instead of averaged
    ("11", "return (d * d).mean()", "return (d * d).sum()", "gram_loss", "max err"),
])
def test_grader_names_the_broken_part(tmp_path, capsys, number, old, new, part, says):
    assert grade.main([number, "--file", str(_broken(tmp_path, number, old, new))]) == 1
    out = capsys.readouterr().out
    line = re.search(rf"^  {part}\s+(\S+)\s+(.*)$", out, re.MULTILINE)
    assert line and line.group(1) == "FAIL", out
    assert says in line.group(2), out
    others = [p.name for p in EXERCISES[number].parts if p.name != part]
    for other in others:
        assert re.search(rf"^  {other}\s+pass", out, re.MULTILINE), out


def test_grader_on_the_blank_exercises_says_not_done():
    done = subprocess.run([sys.executable, "-m", "minidl.grade", "02"], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("not done") == len(EXERCISES["02"].parts), done.stdout
    assert "0 of 3 parts pass" in done.stdout


def test_grader_command_line_errors(tmp_path, capsys):
    assert grade.main(["99"]) == 2
    assert "no exercise '99'" in capsys.readouterr().err
    assert grade.main(["02", "--file", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "02_syntax.py"
    broken.write_text("def corr2d(X, K)\n    pass\n")
    assert grade.main(["2", "--file", str(broken)]) == 1
    assert "cannot import the file: SyntaxError" in capsys.readouterr().out


def test_minidl_grade_subcommand_is_registered():
    from minidl.cli import build_parser

    args = build_parser().parse_args(["grade", "06"])
    assert args.func is grade.run and args.number == "06"
