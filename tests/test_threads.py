"""backends/threads.py: loops split between threads give exactly the one-thread results.

The arrays in tests are small, so each test lowers ``MIN_BYTES`` to 0 and asks
for 3 threads (more than this machine's 2 cores, and an odd count), so that
every split really happens, with uneven parts.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from forking import check_in_forked_child

import minidl.functional as F
from minidl.backends import threads, winograd
from minidl.backends.cpu import CpuBackend
from minidl.tensor import tensor


@pytest.fixture
def split(monkeypatch):
    """Split every loop into 3 parts, however small."""
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    monkeypatch.setattr(threads, "THREADS", 3)


def test_parts_cover_the_range_once_on_several_threads(split):
    calls, lock = [], threading.Lock()

    def work(start, stop):
        with lock:
            calls.append((start, stop, threading.get_ident()))

    threads.for_each_part(work, 10, nbytes=0)
    assert sorted((a, b) for a, b, _ in calls) == [(0, 3), (3, 6), (6, 10)]
    assert len({ident for *_, ident in calls}) > 1


def test_small_arrays_stay_in_one_call(monkeypatch):
    monkeypatch.setattr(threads, "THREADS", 3)
    calls = []
    threads.for_each_part(lambda a, b: calls.append((a, b)), 10, nbytes=threads.MIN_BYTES - 1)
    assert calls == [(0, 10)]


def test_fewer_items_than_threads(split):
    calls = []
    threads.for_each_part(lambda a, b: calls.append((a, b)), 2, nbytes=0)
    assert sorted(calls) == [(0, 1), (1, 2)]


def test_an_error_in_a_part_reaches_the_caller(split):
    def work(start, stop):
        if start > 0:
            raise RuntimeError(f"part {start}")

    with pytest.raises(RuntimeError, match="part"):
        threads.for_each_part(work, 9, nbytes=0)


def test_after_an_error_here_no_part_is_still_running(split):
    finished = []

    def work(start, stop):
        if start == 0:
            raise RuntimeError("this thread's part")
        time.sleep(0.05)
        finished.append(start)

    with pytest.raises(RuntimeError, match="this thread's part"):
        threads.for_each_part(work, 9, nbytes=0)
    assert sorted(finished) == [3, 6]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_copy_add_contiguous_equal_numpy(split, axis):
    rng = np.random.default_rng(0)
    src = rng.standard_normal((5, 7, 11))
    view = src.transpose(2, 0, 1)[::2]  # strided, not contiguous
    dest = np.zeros(view.shape)
    threads.copy(dest, view, axis=axis)
    assert np.array_equal(dest, view)
    made = threads.contiguous(view, axis=axis)
    assert made.flags.c_contiguous and np.array_equal(made, view)
    before = dest.copy()
    threads.add(dest, view, axis=axis)
    assert np.array_equal(dest, before + view)


def test_add_broadcasts_a_bias_along_its_axis(split):
    y = np.arange(2 * 5 * 3 * 3, dtype=np.float32).reshape(2, 5, 3, 3)
    bias = np.arange(5, dtype=np.float32).reshape(1, 5, 1, 1)
    expected = y + bias
    threads.add(y, bias, axis=1)
    assert np.array_equal(y, expected)


def test_elementwise_equals_numpy_and_keeps_dtype(split):
    x = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    out = threads.elementwise(lambda v, out=None: np.maximum(v, 0, out=out), x)
    assert out.dtype == np.float32 and np.array_equal(out, np.maximum(x, 0))
    mask = threads.elementwise(np.greater, x, -x)
    assert mask.dtype == bool and np.array_equal(mask, x > -x)
    # not contiguous: computed in one call, same answer
    assert np.array_equal(threads.elementwise(np.negative, x.T), -x.T)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINIDL_THREADS", "3")
    assert threads._thread_count() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("MINIDL_THREADS", bad)
        with pytest.raises(ValueError, match="MINIDL_THREADS"):
            threads._thread_count()


# ------------------------------------------------- the backend ops that split work


def _results(function, monkeypatch):
    """function() with one thread, and split into 3 parts of every loop."""
    monkeypatch.setattr(threads, "THREADS", 1)
    single = function()
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    monkeypatch.setattr(threads, "THREADS", 3)
    return single, function()


@pytest.mark.parametrize("algorithm", ["im2col", "mec", "winograd"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_convolutions_split_equal_one_thread(monkeypatch, algorithm, stride):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 9, 7)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    cpu = CpuBackend()
    with winograd.conv_algorithm(algorithm):

        def run():
            y = cpu.conv2d(x, w, stride, (1, 1), (1, 1))
            gx = cpu.conv2d_grad_input(y, w, x.shape[2:], stride, (1, 1), (1, 1))
            gw = cpu.conv2d_grad_weight(x, y, (3, 3), stride, (1, 1), (1, 1))
            return y, gx, gw

        single, split_up = _results(run, monkeypatch)
    for a, b in zip(single, split_up):
        assert np.array_equal(a, b)


def test_fold_and_pooling_split_equal_one_thread(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 8, 9)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan
    cpu = CpuBackend()

    def run():
        cols = cpu.im2col(x, (3, 2), (2, 1), (1, 0), (1, 1))
        folded = cpu.col2im(cols, (8, 9), (3, 2), (2, 1), (1, 0), (1, 1))
        pooled, where = cpu.max_pool2d(x, (3, 3), (2, 2), (1, 1))
        return cols, folded, pooled, where

    single, split_up = _results(run, monkeypatch)
    for a, b in zip(single, split_up):
        assert np.array_equal(a, b, equal_nan=True)


def test_relu_and_bias_split_equal_one_thread(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)

    def run():
        xt = tensor(x, requires_grad=True)
        y = F.relu(F.conv2d(xt, tensor(w), tensor(b), padding=1))
        (y * y).sum().backward()
        return y.numpy(), xt.grad.numpy()

    single, split_up = _results(run, monkeypatch)
    for a, b in zip(single, split_up):
        assert np.array_equal(a, b)


# ------------------------------------------------- BLAS's spin (minidl/blas_spin.py)


def _timeout_after(code, env_value=None):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_minidl_first_shortens_blas_spin():
    show = "import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), minidl.blas_spin.SHORTENED)"
    assert _timeout_after("import minidl; " + show) == ["14", "True"]
    # NumPy first: its BLAS has read the environment already, so minidl leaves it
    assert _timeout_after("import numpy, minidl; " + show) == ["None", "False"]
    # the user's own setting stays
    assert _timeout_after("import minidl; " + show, env_value="20") == ["20", "False"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_threads(split):
    # The parent's pool threads are not copied by fork; a child that reused the
    # pool would wait for them forever.
    # The parent's pool exists now, with all its threads started and idle (each
    # part waits for the others, so no thread can take two parts).
    started = threading.Barrier(threads.THREADS)
    threads.for_each_part(lambda start, stop: started.wait(timeout=10), threads.THREADS, nbytes=0)

    def split_copy_works():
        dest = np.zeros((6, 5))
        threads.copy(dest, np.ones((6, 5)))
        return dest.sum() == 30

    check_in_forked_child(split_copy_works, "a split copy in a forked child")
