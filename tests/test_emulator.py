"""Tests of the CUDA emulator itself (minidl/backends/emulated.py + kernels/cuda_emu.h).

The kernels here are small ones written for the test; the real kernels in
kernels/*.cu are tested against the cpu backend elsewhere.  Each .cu file costs a
g++ run (about a second), so most kernels share one file, compiled once.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from devices import needs_emulator
from forking import check_in_forked_child

from minidl.backends import emulated
from minidl.backends.emulated import EmulatedModule, emulator_available, parse_kernels

pytestmark = needs_emulator

KERNELS = r"""
// Grid-stride loop: any grid covers any n.
extern "C" __global__ void scale(const float* __restrict__ x,
                                 float* __restrict__ y,
                                 float a,
                                 long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        y[i] = a * x[i];
    }
}

// Tree reduction in shared memory: needs every __syncthreads to be right.
// The barrier is in a helper, so the source scan must follow the call.
__device__ float block_sum(float v) {
    __shared__ float tile[128];
    tile[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) tile[threadIdx.x] += tile[threadIdx.x + s];
        __syncthreads();
    }
    return tile[0];
}

extern "C" __global__ void partial_sums(const float* x, float* partial, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float total = block_sum(i < n ? x[i] : 0.0f);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Threads past the end return before the barrier; the others must not hang.
extern "C" __global__ void reverse_in_block(const float* x, float* y, int n) {
    __shared__ float tile[64];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    tile[threadIdx.x] = x[i];
    __syncthreads();
    int last = min(n - 1 - (int)(blockIdx.x * blockDim.x), (int)blockDim.x - 1);
    y[i] = tile[last - threadIdx.x];
}

// Every thread writes its coordinates: 12 ints per thread.
extern "C" __global__ void coordinates(int* out) {
    unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    int* o = out + 12 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
    o[0] = blockIdx.x;  o[1] = blockIdx.y;  o[2] = blockIdx.z;
    o[3] = threadIdx.x; o[4] = threadIdx.y; o[5] = threadIdx.z;
    o[6] = blockDim.x;  o[7] = blockDim.y;  o[8] = blockDim.z;
    o[9] = gridDim.x;   o[10] = gridDim.y;  o[11] = gridDim.z;
}

extern "C" __global__ void count(int* counter, float* fcounter) {
    atomicAdd(counter, 1);
    atomicAdd(fcounter, 0.5f);
}

extern "C" __global__ void scalars(int a, float b, long long c, double d, int64_t e,
                                   unsigned char f, long long* ints, double* reals) {
    ints[0] = max(a, -100); ints[1] = c; ints[2] = min(e, (int64_t)0); ints[3] = f;
    reals[0] = max(b, 0.0f); reals[1] = min(d, 1.0);
}

// A barrier the source scan cannot see (hidden behind a macro).
#define HIDDEN_SYNC() __syncthreads()
extern "C" __global__ void hidden_barrier(float* x) {
    HIDDEN_SYNC();
}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private, empty kernel cache for this test module."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    yield emulated.cache_dir()
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("kernels") / "test_kernels.cu"
    path.write_text(KERNELS)
    return path


@pytest.fixture(scope="module")
def module(cache, source):
    return EmulatedModule([source])


@pytest.fixture(scope="module")
def threads_module(cache, source, module):
    """The same library, every kernel forced into threads mode."""
    return EmulatedModule([source], mode="threads")


def test_grid_stride_elementwise(module):
    scale = module.get_function("scale")
    assert not scale.use_threads  # no barrier: loop mode
    x = np.random.default_rng(0).standard_normal(10_007).astype(np.float32)
    y = np.zeros_like(x)
    scale((5,), (128,), (x, y, np.float32(3.0), np.int64(x.size)))  # far fewer threads than n
    np.testing.assert_array_equal(y, np.float32(3.0) * x)
    y[:] = 0
    scale((200,), (256,), (x, y, np.float32(-1.0), np.int64(x.size)))  # many workers
    np.testing.assert_array_equal(y, -x)


def test_shared_memory_reduction_with_barriers(module):
    kernel = module.get_function("partial_sums")
    assert kernel.use_threads  # found __syncthreads through block_sum()
    x = np.random.default_rng(1).random(1000).astype(np.float32)
    blocks = (x.size + 127) // 128
    partial = np.zeros(blocks, dtype=np.float32)
    kernel((blocks,), (128,), (x, partial, np.int32(x.size)))
    for b in range(blocks):
        np.testing.assert_allclose(partial[b], x[128 * b : 128 * (b + 1)].sum(), rtol=1e-5)
    np.testing.assert_allclose(partial.sum(), x.astype(np.float64).sum(), rtol=1e-5)


def test_early_return_before_barrier_does_not_hang(module):
    x = np.arange(150, dtype=np.float32)  # last block only partly full
    y = np.zeros_like(x)
    module.get_function("reverse_in_block")((3,), (64,), (x, y, np.int32(x.size)))
    expected = np.concatenate([x[:64][::-1], x[64:128][::-1], x[128:][::-1]])
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("grid, block", [((3, 2), (4, 5)), ((2, 3, 2), (3, 2, 4)), (5, 7)])
@pytest.mark.parametrize("mode", ["loop", "threads"])
def test_block_and_thread_indices(module, threads_module, grid, block, mode):
    kernel = (threads_module if mode == "threads" else module).get_function("coordinates")
    g = (grid,) if isinstance(grid, int) else grid
    b = (block,) if isinstance(block, int) else block
    g, b = g + (1,) * (3 - len(g)), b + (1,) * (3 - len(b))
    out = np.full((g[2], g[1], g[0], b[2], b[1], b[0], 12), -1, dtype=np.int32)
    kernel(grid, block, (out,))
    gz, gy, gx, tz, ty, tx = np.indices(out.shape[:6])
    for i, want in enumerate([gx, gy, gz, tx, ty, tz]):
        np.testing.assert_array_equal(out[..., i], want)
    np.testing.assert_array_equal(out[..., 6:9], np.broadcast_to(b, out.shape[:6] + (3,)))
    np.testing.assert_array_equal(out[..., 9:12], np.broadcast_to(g, out.shape[:6] + (3,)))


@pytest.mark.parametrize("mode", ["loop", "threads"])
def test_atomic_add_counts_every_thread(module, threads_module, mode):
    kernel = (threads_module if mode == "threads" else module).get_function("count")
    counter, fcounter = np.zeros(1, np.int32), np.zeros(1, np.float32)
    kernel((7, 3), (64, 2), (counter, fcounter))  # 21 blocks x 128 threads
    assert counter[0] == 7 * 3 * 64 * 2
    assert fcounter[0] == 0.5 * 7 * 3 * 64 * 2
    if mode == "loop":  # large enough to be split over several workers
        counter[0] = 0
        kernel((1000,), (256,), (counter, fcounter))
        assert counter[0] == 256_000


def test_scalar_arguments_arrive_intact(module):
    ints, reals = np.zeros(4, np.int64), np.zeros(2, np.float64)
    args = (
        np.int32(-7),
        np.float32(1.5),
        np.int64(2**40 + 3),
        np.float64(1 / 3),
        np.int64(-(2**62)),
        np.uint8(250),
        ints,
        reals,
    )
    module.get_function("scalars")((1,), (1,), args)
    assert ints.tolist() == [-7, 2**40 + 3, -(2**62), 250]
    assert reals.tolist() == [1.5, 1 / 3]


def test_bad_launches_raise_clear_errors(module):
    scale = module.get_function("scale")
    x, y = np.zeros(8, np.float32), np.zeros(8, np.float32)
    good = (x, y, np.float32(1), np.int64(8))

    with pytest.raises(TypeError, match=r"'scale' takes 4 arguments .* got 3"):
        scale((1,), (8,), good[:3])
    with pytest.raises(TypeError, match=r"argument 0 'x'.*float32 array, got float64"):
        scale((1,), (8,), (x.astype(np.float64),) + good[1:])
    # Python numbers are refused: cupy would pass them as 64-bit values.
    with pytest.raises(TypeError, match=r"argument 3 'n'.*np.int64 scalar, got Python int"):
        scale((1,), (8,), good[:3] + (8,))
    with pytest.raises(TypeError, match=r"argument 2 'a'.*np.float32 scalar, got np.float64"):
        scale((1,), (8,), (x, y, np.float64(1), np.int64(8)))
    with pytest.raises(TypeError, match=r"argument 1 'y'.*numpy array, got list"):
        scale((1,), (8,), (x, [0.0] * 8, np.float32(1), np.int64(8)))
    with pytest.raises(ValueError, match="not C-contiguous"):
        scale((1,), (8,), (np.zeros(16, np.float32)[::2],) + good[1:])
    readonly = y.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match=r"'y'.*non-const pointer.*read-only"):
        scale((1,), (8,), (x, readonly) + good[2:])

    with pytest.raises(ValueError, match=r"block.x = 1025; CUDA allows 1 to 1024"):
        scale((1,), (1025,), good)
    with pytest.raises(ValueError, match=r"2048 threads; CUDA allows at most 1024"):
        scale((1,), (32, 32, 2), good)
    with pytest.raises(ValueError, match=r"block.z = 65"):
        scale((1,), (1, 1, 65), good)
    with pytest.raises(ValueError, match=r"grid.y = 65536"):
        scale((1, 65536), (1,), good)
    with pytest.raises(ValueError, match=r"grid.x = 0"):
        scale((0,), (8,), good)
    with pytest.raises(TypeError, match="tuple of 1 to 3 ints"):
        scale((1, 1, 1, 1), (8,), good)
    with pytest.raises(ValueError, match="dynamic shared memory"):
        scale((1,), (8,), good, shared_mem=128)
    with pytest.raises(KeyError, match="no kernel 'nope'.*found: scale"):
        module.get_function("nope")


def _reduce_1000(kernel, seed):
    x = np.random.default_rng(seed).random(1000).astype(np.float32)
    partial = np.zeros(8, dtype=np.float32)
    kernel((8,), (128,), (x, partial, np.int32(x.size)))
    return partial.sum(), x.astype(np.float64).sum()


def test_concurrent_launches_from_host_threads(module):
    """ctypes drops the GIL; launches sharing __shared__ statics must still not mix."""
    kernel = module.get_function("partial_sums")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda seed: _reduce_1000(kernel, seed), range(8)))
    for got, want in results:
        np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_threads_mode_works_in_a_forked_child(module):
    """The parked thread pool does not survive fork(); the child must build its own."""
    kernel = module.get_function("partial_sums")
    _reduce_1000(kernel, 0)  # the parent's pool exists now

    def launch_works():
        got, want = _reduce_1000(kernel, 1)
        return abs(got - want) < 1e-3 * want

    check_in_forked_child(launch_works, "a threads-mode launch in a forked child")


def test_barrier_missed_by_the_source_scan_is_reported(module, threads_module):
    x = np.zeros(1, np.float32)
    with pytest.raises(RuntimeError, match="__syncthreads.*mode='threads'"):
        module.get_function("hidden_barrier")((2,), (4,), (x,))
    threads_module.get_function("hidden_barrier")((2,), (4,), (x,))  # fine there


def test_misaligned_vector_load_fails_as_on_a_gpu(cache, tmp_path):
    """A float4 load at an address that is not a multiple of 16 bytes stops a GPU
    kernel; the emulator reports it too (through check_aligned), and the next,
    aligned launch is fine again."""
    path = tmp_path / "vector.cu"
    path.write_text(
        'extern "C" __global__ void first_four(const float* x, float* y, int start) {\n'
        "    const float* p = x + start;\n"
        "#ifdef MINIDL_CUDA_EMU\n"
        "    minidl_emu::check_aligned(p, 16);\n"
        "#endif\n"
        "    const float4 v = *reinterpret_cast<const float4*>(p);\n"
        "    y[0] = v.x + v.y + v.z + v.w;\n"
        "}\n"
    )
    kernel = EmulatedModule([path]).get_function("first_four")
    x, y = np.arange(12, dtype=np.float32), np.zeros(1, np.float32)
    assert x.ctypes.data % 16 == 0
    with pytest.raises(RuntimeError, match="misaligned address.*multiple of 16 bytes"):
        kernel((1,), (1,), (x, y, np.int32(1)))
    kernel((1,), (1,), (x, y, np.int32(4)))
    assert y[0] == 4 + 5 + 6 + 7


def test_disk_cache_is_reused(cache, tmp_path):
    path = tmp_path / "cached.cu"
    path.write_text('extern "C" __global__ void one(int* x) { x[threadIdx.x] = 1; }\n')
    before = emulated.compile_count
    EmulatedModule([path])
    assert emulated.compile_count == before + 1
    (library,) = cache.glob("cached-*.so")
    mtime = library.stat().st_mtime_ns

    x = np.zeros(4, np.int32)
    EmulatedModule(path).get_function("one")((1,), (4,), (x,))  # loaded, not compiled
    assert emulated.compile_count == before + 1
    assert library.stat().st_mtime_ns == mtime
    assert x.tolist() == [1, 1, 1, 1]

    path.write_text(path.read_text().replace("= 1;", "= 2;"))  # an edit recompiles
    EmulatedModule([path]).get_function("one")((1,), (4,), (x,))
    assert emulated.compile_count == before + 2
    assert x.tolist() == [2, 2, 2, 2]


def test_compile_error_shows_compiler_output(cache, tmp_path):
    path = tmp_path / "broken.cu"
    path.write_text('extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }\n')
    with pytest.raises(RuntimeError) as info:
        EmulatedModule([path])
    message = str(info.value)
    assert "broken.cu" in message
    assert "undefined_name" in message and "not declared" in message
    # the generated wrapper named in the message (it includes broken.cu) can be opened
    wrapper = re.search(r"generated wrapper (\S+\.cpp)\)", message).group(1)
    assert str(path) in Path(wrapper).read_text()


def test_missing_compiler_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_EMU_CXX", "no-such-compiler-minidl")
    path = tmp_path / "k.cu"
    path.write_text('extern "C" __global__ void k(int n) {}\n')
    with pytest.raises(RuntimeError, match="apt-get install g\\+\\+"):
        EmulatedModule([path])
    ok, reason = emulator_available()
    assert not ok and "no-such-compiler-minidl" in reason


def test_address_sanitizer_needs_the_preload(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_EMU_CHECK", "1")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    path = tmp_path / "k.cu"
    path.write_text('extern "C" __global__ void k(int n) {}\n')
    with pytest.raises(RuntimeError, match="LD_PRELOAD=.*libasan"):
        EmulatedModule([path])


def test_emulator_available(cache):
    ok, reason = emulator_available()
    assert ok, reason


def test_parse_kernels():
    source = """
    // extern "C" __global__ void commented_out(int n) {}
    extern "C" __global__ __launch_bounds__(256) void k1(
        const float * __restrict__ x,   /* input */
        unsigned int n, long long m,
        int64_t big, void* raw, float2 pair) { }
    __global__ void not_extern_c(int n) {}
    extern "C" __global__ void k2() { __syncthreads(); }
    """
    k1, k2 = parse_kernels(source)
    assert (k1.name, k2.name) == ("k1", "k2")
    assert [p.name for p in k1.params] == ["x", "n", "m", "big", "raw", "pair"]
    x, n, m, big, raw, pair = k1.params
    assert x.is_pointer and x.is_const and x.dtype == np.float32
    assert (n.dtype, m.dtype, big.dtype) == (np.uint32, np.int64, np.int64)
    assert raw.is_pointer and raw.dtype is None and raw.supported
    assert not pair.supported
    assert not k1.uses_barrier and k2.uses_barrier and k2.params == ()


def test_parenthesised_define_does_not_hide_a_barrier_kernel():
    # A "#define NAME (expr)" once looked like a function NAME swallowing the kernel
    # after it, so the kernel lost its barrier flag and ran in loop mode.
    source = """
#define MICRO (TILE / THREADS)
#define TWICE(a) \\
    ((a) * 2)
extern "C" __global__ void tiled(float* out) {
    __shared__ float tile[4];
    __syncthreads();
}
"""
    (kernel,) = parse_kernels(source)
    assert kernel.name == "tiled"
    assert kernel.uses_barrier
