"""backends/threads.py: loops split between threads give exactly the one-thread results
(matrix products: to rounding).

The arrays in tests are small, so each test lowers ``MIN_BYTES`` to 0 and asks
for 3 threads (more than this machine's 2 cores, and an odd count), so that
every split really happens, with uneven parts.
"""

import functools
import os
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

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


def test_other_threads_calling_in_meanwhile_get_whole_correct_results(split):
    # The helpers run one split loop at a time; a loop started in another of the
    # program's threads meanwhile runs whole in that thread, and nothing mixes.
    a = np.arange(40 * 30, dtype=np.float64).reshape(40, 30) / 100

    def user_thread(seed):  # True when all its results were right
        b = np.random.default_rng(seed).standard_normal((30, 20))
        right = []
        for _ in range(30):
            dest = np.empty_like(a)
            threads.copy(dest, a)
            product = threads.elementwise(np.multiply, dest, a)
            right.append(np.array_equal(product, a * a) and np.allclose(threads.matmul(a, b), a @ b))
        return all(right)

    with ThreadPoolExecutor(4) as users:  # (map re-raises a thread's error here)
        assert list(users.map(user_thread, range(4))) == [True] * 4


def test_the_helpers_let_go_of_the_arrays_of_a_finished_loop(split):
    # A helper that kept its last part (and the arrays its closure holds) until
    # the next one raised VGG16's peak memory at 512 px by 28 MB.
    def double(array, start, stop):
        array[start:stop] *= 2

    data = np.ones(10)
    alive = weakref.ref(data)
    threads.for_each_part(functools.partial(double, data), 10, nbytes=0)
    del data
    assert alive() is None


def test_after_an_interrupted_wait_the_next_loop_gets_new_helpers(split, monkeypatch):
    # Ctrl-C while waiting for a helper: the helper may still be busy, so the next
    # loop must not hand it a part.
    real_join = threads._Helper.join

    def interrupted_join(helper):
        real_join(helper)
        raise KeyboardInterrupt

    monkeypatch.setattr(threads._Helper, "join", interrupted_join)
    with pytest.raises(KeyboardInterrupt):
        threads.for_each_part(lambda start, stop: None, 9, nbytes=0)
    old_helpers = list(threads._helpers)
    monkeypatch.setattr(threads._Helper, "join", real_join)
    calls = []
    threads.for_each_part(lambda start, stop: calls.append((start, stop)), 9, nbytes=0)
    assert sorted(calls) == [(0, 3), (3, 6), (6, 9)]
    assert old_helpers == [] and len(threads._helpers) == 2


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


def test_copy_goes_a_block_at_a_time_and_covers_every_index(split, monkeypatch):
    # With BLOCK_BYTES of two rows of dest, each of the 3 parts of 7 rows copies
    # blocks of at most 2 rows: the blocks together are every row, once.
    rng = np.random.default_rng(0)
    src = rng.standard_normal((11, 7, 5)).transpose(1, 0, 2)  # (7, 11, 5), strided
    dest = np.zeros(src.shape)
    monkeypatch.setattr(threads, "BLOCK_BYTES", 2 * dest[0].nbytes)
    blocks = []
    monkeypatch.setattr(np, "copyto", lambda d, s, **kw: (blocks.append(len(d)), d.__setitem__(..., s)))
    threads.copy(dest, src)
    assert np.array_equal(dest, src)
    assert sorted(blocks) == [1, 2, 2, 2]  # parts of 2, 2 and 3 rows: 2 | 2 | 2 + 1


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
        # the gradient where windows overlap (bincount) and where they do not (writes)
        overlapping = cpu.max_pool2d_grad(pooled, where, (8, 9), (3, 3), (2, 2), (1, 1))
        apart, switches = cpu.max_pool2d(x, (2, 2), (2, 2), (0, 0))
        disjoint = cpu.max_pool2d_grad(apart, switches, (8, 9), (2, 2), (2, 2), (0, 0))
        return cols, folded, pooled, where, overlapping, disjoint

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


# ------------------------------------------------- matrix products (threads.matmul)


@pytest.fixture
def split_products(split, monkeypatch):
    """Split every product, however small, into 3 parts."""
    monkeypatch.setattr(threads, "MIN_PRODUCT", 0)


def _operands(shape_a, shape_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_a).astype(dtype), rng.standard_normal(shape_b).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((40, 70), (70, 90)),  # wider than tall: columns per thread
        ((90, 70), (70, 40)),  # taller than wide: rows per thread
        ((5, 30, 70), (5, 70, 20)),  # a batch of 5 on 3 threads
        ((2, 30, 70), (2, 70, 20)),  # a batch of 2: each product split instead
        ((4, 30, 70), (70, 20)),  # a batch against one matrix, and the other way
        ((30, 70), (4, 70, 20)),
    ],
    ids=str,
)
def test_matmul_equals_numpy(split_products, shape_a, shape_b, dtype):
    # (to rounding: BLAS may use another kernel for a narrower part)
    a, b = _operands(shape_a, shape_b, dtype)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(threads.matmul(a, b), np.matmul(a, b), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_equals_numpy_and_is_symmetric(split_products, dtype):
    # a batch of 2, each one's 200 columns cut into 3 shares whose products add up
    f = _operands((2, 7, 200), (1, 1), dtype)[0]
    tolerance = 1e-5 if dtype == np.float32 else 1e-13  # (sums of 200 terms near 200)
    got = threads.gram(f)
    np.testing.assert_allclose(got, f @ f.transpose(0, 2, 1), rtol=tolerance, atol=tolerance)
    assert np.array_equal(got, got.transpose(0, 2, 1))


def test_matmul_reads_strided_operands_and_writes_into_a_view(split_products):
    big, c = _operands((40, 140), (90, 70), np.float32)
    a, b = big[:, ::2], c.T  # every other column; a transposed view
    out = np.zeros((40, 100), dtype=np.float32)
    result = threads.matmul(a, b, out[:, 5:95])  # rows of out lie 100 floats apart
    assert result.base is out or result.base is out.base
    np.testing.assert_allclose(out[:, 5:95], np.matmul(a, b), rtol=1e-6, atol=1e-5)
    assert not out[:, :5].any() and not out[:, 95:].any()


def test_matmul_leaves_small_and_other_shapes_to_numpy(split, monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "for_each_part", lambda *args, **kw: calls.append(args))
    a, b = _operands((8, 9), (9, 7), np.float64)  # under MIN_PRODUCT
    assert np.array_equal(threads.matmul(a, b), a @ b)
    monkeypatch.setattr(threads, "MIN_PRODUCT", 0)
    a4, b4 = _operands((2, 2, 5, 7), (2, 2, 7, 3), np.float64)  # 4-D
    assert np.array_equal(threads.matmul(a4, b4), a4 @ b4)
    a3, b3 = _operands((1, 5, 7), (3, 7, 4), np.float64)  # batches that broadcast
    assert np.array_equal(threads.matmul(a3, b3), a3 @ b3)
    assert np.array_equal(threads.matmul(a, np.ones(9)), a @ np.ones(9))  # 1-D
    assert calls == []


def _in_fresh_python(code: str, **env) -> str:
    environment = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                         text=True, check=True, timeout=120)  # fmt: skip
    return out.stdout.strip()


BLAS_THREADS_AFTER_A_PRODUCT = """
import numpy as np
from threadpoolctl import threadpool_info
from minidl.backends import threads
threads.THREADS = 2
a = np.ones((300, 300), dtype=np.float32)
assert np.array_equal(threads.matmul(a, a), a @ a)
print(threads._blas_single, [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
"""


def test_after_a_split_product_blas_runs_each_call_on_one_thread():
    assert _in_fresh_python(BLAS_THREADS_AFTER_A_PRODUCT) == "True [1]"


def test_minidl_threads_1_leaves_blas_its_threads():
    code = BLAS_THREADS_AFTER_A_PRODUCT.replace("threads.THREADS = 2", "")
    assert _in_fresh_python(code, MINIDL_THREADS="1").startswith("False")


def test_a_part_that_splits_again_runs_in_its_own_thread():
    # A part that split itself again would wait for the other threads, busy with
    # their own parts (a helper would wait for itself): each part runs inline.
    code = """
import threading
from minidl.backends import threads
threads.THREADS, threads.MIN_BYTES = 2, 0
seen = []
def inner(start, stop):
    seen.append(threading.current_thread().name)
def outer(start, stop):
    threads.for_each_part(inner, 4, nbytes=0)
threads.for_each_part(outer, 2, nbytes=0)
print(len(seen), sorted(set(n.split("_")[0] for n in seen)))
"""
    assert _in_fresh_python(code) == "2 ['MainThread', 'minidl-helper']"


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
