"""``minidl bench --kernels``: the hand-written kernels against the vendor libraries.

On ``--device cuda`` every kernel family is timed with CUDA events and compared with
what the array module (CuPy) offers for the same job:

=================  =====================================================
kernels/gemm.cu    cuBLAS SGEMM (``cupy.matmul``), 1024³ and VGG16's conv shapes
                   (through ``backends/gemm.py``, so a small product is split-K)
kernels/gram.cu    cuBLAS ``F @ F.T``
conv2d             cuDNN (through PyTorch, if installed) and im2col + cuBLAS
                   (``MINIDL_GEMM=cublas``); im2col and Winograd (``MINIDL_CONV``)
                   each; also both conv gradients
kernels/pool.cu    CuPy reshape/max/mean/compare expressions
=================  =====================================================

and prints the time of each, the ratio (how many times slower the teaching kernel
is) and the largest difference between the two results, relative to the result's
size.  Nobody expects a teaching GEMM (64x64 tiles, 4x4 outputs per thread) to reach
cuBLAS; the point is to see by how much it misses and where the time goes.

On ``--device cuda-emu`` timings mean nothing (CPU threads), so it only runs each
family on a small case and checks it against the cpu backend.
"""

from __future__ import annotations

import numpy as np

from minidl.backends import setting, winograd

#: Problem sizes of the cuda benchmark (a test shrinks them to run under the emulator).
SIZES = {
    # M, N, K.  A VGG16 convolution at 224 px as im2col + GEMM is C_out x H·W x C_in·9;
    # the weight gradient of block1_conv2 is a small output (64 x 576) with a long sum.
    "gemm": [
        (1024, 1024, 1024, "1024³"),
        (64, 50176, 576, "VGG block1_conv2"),
        (128, 12544, 1152, "VGG block2_conv2"),
        (256, 3136, 2304, "VGG block3_conv3"),
        (512, 784, 4608, "VGG block4_conv3"),
        (512, 196, 4608, "VGG block5_conv3"),
        (64, 576, 50176, "VGG block1_conv2 dW"),
    ],
    "gram": (2, 256, 112, 112),  # x: N, C, H, W
    "conv": (4, 128, 112, 112, 128),  # x: N, C, H, W; C_out (3x3 kernel, padding 1)
    "pool": (8, 64, 224, 224),  # x (2x2 windows, stride 2)
}
REPEAT = 10  # timed calls per measurement (after 2 warm-up calls)


def _gemm_mode(mode: str | None):
    """Temporarily set MINIDL_GEMM (None: unset)."""
    return setting("MINIDL_GEMM", mode)


def _rel_err(a, b) -> float:
    """max |a - b| / max(1, max |b|), on the host."""
    a = a.get() if hasattr(a, "get") else np.asarray(a)
    b = b.get() if hasattr(b, "get") else np.asarray(b)
    return float(np.abs(a - b).max(initial=0.0) / max(1.0, float(np.abs(b).max(initial=0.0))))


# ---------------------------------------------------------------------- cuda


def _timer(cp, repeat: int = 10, warmup: int = 2):
    """Return time_ms(fn): mean milliseconds of fn() over `repeat` calls, by CUDA events."""

    def time_ms(fn) -> float:
        for _ in range(warmup):
            fn()
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(repeat):
            fn()
        stop.record()
        stop.synchronize()
        return cp.cuda.get_elapsed_time(start, stop) / repeat

    return time_ms


def _torch_cudnn():
    """PyTorch with CUDA (for a cuDNN convolution), or None."""
    try:
        import torch
    except Exception:  # noqa: BLE001 -- optional, any failure means "not available"
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False  # compare float32 with float32
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def _bench_cuda() -> int:
    from minidl.backends import cuda as cuda_glue
    from minidl.backends import get_backend
    from minidl.backends.gemm import Matrix

    ok, reason = cuda_glue.cuda_available()
    if not ok:
        print(f"minidl bench --kernels: device 'cuda' is not available: {reason}")
        return 1
    cp = cuda_glue._import_cupy()

    print(f"kernel benchmark on cuda: {reason}")
    kb = get_backend("cuda")
    time_ms = _timer(cp, repeat=REPEAT)
    rng = cp.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape, dtype=cp.float32)

    rows = []  # (what, shape, ours_ms, reference name, ref_ms, rel_err, flops)

    def row(what, shape, ours, ref_name, ref, flops=None):
        out_ours, out_ref = ours(), ref()
        err = _rel_err(out_ours, out_ref)
        rows.append((what, shape, time_ms(ours), ref_name, time_ms(ref), err, flops))

    # --- GEMM ----------------------------------------------------------------
    for m, n, k, label in SIZES["gemm"]:
        a, b = rand(m, k), rand(k, n)
        c = cp.empty((m, n), dtype=cp.float32)

        def ours(a=a, b=b, c=c, m=m, n=n, k=k):
            kb.gemm(Matrix(c, m, n), Matrix(a, m, k), Matrix(b, k, n))
            return c

        row(f"sgemm {label}", f"{m}x{k} · {k}x{n}", ours, "cuBLAS matmul",
            lambda a=a, b=b: cp.matmul(a, b), 2 * m * n * k)  # fmt: skip

    # --- Gram ------------------------------------------------------------------
    x = rand(*SIZES["gram"])
    n_, c_, h_, w_ = x.shape
    f = x.reshape(n_, c_, h_ * w_)
    row("gram", str(tuple(x.shape)), lambda: kb.gram(x), "cuBLAS F·Fᵀ",
        lambda: cp.matmul(f, f.transpose(0, 2, 1)) / (c_ * h_ * w_),
        n_ * c_ * c_ * h_ * w_ * 2)  # fmt: skip

    # --- convolution -----------------------------------------------------------
    n_, c_, h_, w_, c_out = SIZES["conv"]
    x, w = rand(n_, c_, h_, w_), rand(c_out, c_, 3, 3)
    one, pad = (1, 1), (1, 1)
    flops = 2 * n_ * c_out * h_ * w_ * c_ * 9

    def conv_ours(algorithm="im2col"):
        with winograd.conv_algorithm(algorithm):
            return kb.conv2d(x, w, one, pad, one)

    def conv_winograd():
        return conv_ours("winograd")

    def conv_cublas():
        with _gemm_mode("cublas"):
            return conv_ours()

    shape = f"x{tuple(x.shape)} w{tuple(w.shape)} pad 1"
    torch = _torch_cudnn()
    if torch is not None:
        tx, tw = torch.from_dlpack(x), torch.from_dlpack(w)

        def conv_cudnn():
            y = torch.nn.functional.conv2d(tx, tw, padding=1)
            return cp.from_dlpack(y)

        row("conv2d (im2col+gemm)", shape, conv_ours, "cuDNN (torch)", conv_cudnn, flops)
        row("conv2d (im2col+cuBLAS)", shape, conv_cublas, "cuDNN (torch)", conv_cudnn, flops)
        row("conv2d (winograd+gemm)", shape, conv_winograd, "cuDNN (torch)", conv_cudnn, flops)
    else:
        print("(no PyTorch with CUDA: cuDNN row skipped; CuPy >= 14 has no cuDNN binding)")
        row("conv2d (im2col+gemm)", shape, conv_ours, "im2col+cuBLAS", conv_cublas, flops)
        row("conv2d (winograd+gemm)", shape, conv_winograd, "im2col+cuBLAS", conv_cublas, flops)

    gy = rand(n_, c_out, h_, w_)

    def grad_in(mode=None, algorithm="im2col"):
        with _gemm_mode(mode), winograd.conv_algorithm(algorithm):
            return kb.conv2d_grad_input(gy, w, (h_, w_), one, pad, one)

    def grad_w(mode=None, algorithm="im2col"):
        with _gemm_mode(mode), winograd.conv_algorithm(algorithm):
            return kb.conv2d_grad_weight(x, gy, (3, 3), one, pad, one)

    # (FLOP: what im2col computes; Winograd does the same job with fewer products.)
    row("conv2d_grad_input", shape, grad_in, "gemm+col2im w/ cuBLAS",
        lambda: grad_in("cublas"), flops)  # fmt: skip
    row("conv2d_grad_input (winograd)", shape, lambda: grad_in(algorithm="winograd"),
        "gemm+col2im w/ cuBLAS", lambda: grad_in("cublas"), flops)  # fmt: skip
    row("conv2d_grad_weight", shape, grad_w, "im2col+gemm w/ cuBLAS",
        lambda: grad_w("cublas"), flops)  # fmt: skip
    row("conv2d_grad_weight (winograd)", shape, lambda: grad_w(algorithm="winograd"),
        "im2col+gemm w/ cuBLAS", lambda: grad_w("cublas"), flops)  # fmt: skip

    # --- pooling ---------------------------------------------------------------
    x = rand(*SIZES["pool"])
    n_, c_, h_, w_ = x.shape
    blocks = x.reshape(n_, c_, h_ // 2, 2, w_ // 2, 2)
    shape = f"{tuple(x.shape)} k2 s2"
    row("max_pool2d", shape, lambda: kb.max_pool2d(x, (2, 2), (2, 2), (0, 0))[0],
        "cupy reshape.max", lambda: blocks.max(axis=(3, 5)))  # fmt: skip
    row("avg_pool2d", shape, lambda: kb.avg_pool2d(x, (2, 2), (2, 2), (0, 0)),
        "cupy reshape.mean", lambda: blocks.mean(axis=(3, 5)))  # fmt: skip
    y, idx = kb.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    gy = rand(*y.shape)

    def max_grad_ref():
        # Same result when each window has one maximum (random data): mask x == max.
        def up(a):
            return a[:, :, :, None, :, None]

        return ((blocks == up(y)) * up(gy)).reshape(x.shape)

    row("max_pool2d_grad", shape, lambda: kb.max_pool2d_grad(gy, idx, (h_, w_), (2, 2), (2, 2), (0, 0)),
        "cupy mask·gy", max_grad_ref)  # fmt: skip
    g_up = rand(*x.shape)
    row("max_unpool2d", shape, lambda: kb.max_unpool2d(y, idx, (h_, w_)),
        "cupy fancy indexing", lambda: _unpool_ref(cp, y, idx, (h_, w_)))  # fmt: skip
    row("max_unpool2d_grad", shape, lambda: kb.max_unpool2d_grad(g_up, idx),
        "cupy take_along_axis",
        lambda: cp.take_along_axis(g_up.reshape(n_, c_, -1), idx.reshape(n_, c_, -1), 2)
        .reshape(idx.shape))  # fmt: skip
    row("avg_pool2d_grad", shape,
        lambda: kb.avg_pool2d_grad(gy, (h_, w_), (2, 2), (2, 2), (0, 0)),
        "cupy broadcast/4", lambda: cp.broadcast_to(gy[:, :, :, None, :, None] / 4,
                                                    blocks.shape).reshape(x.shape))  # fmt: skip

    _print_rows(rows)
    bad = [r[0] for r in rows if r[5] > 1e-3]
    if bad:
        print(f"RESULTS DIFFER (relative error > 1e-3): {', '.join(bad)}")
        return 1
    print("all results agree with the references (relative error <= 1e-3)")
    return 0


def _unpool_ref(cp, y, idx, out_hw):
    """Unpooling by fancy indexing: out[plane, switch] = y."""
    n, c = y.shape[:2]
    out = cp.zeros((n * c, out_hw[0] * out_hw[1]), dtype=y.dtype)
    planes = cp.arange(n * c)[:, None]
    out[planes, idx.reshape(n * c, -1)] = y.reshape(n * c, -1)
    return out.reshape(n, c, *out_hw)


def _print_rows(rows) -> None:
    head = f"{'kernel':<29} {'shape':<34} {'minidl ms':>10} {'reference':<22} {'ref ms':>9} "
    head += f"{'ratio':>7} {'rel err':>8} {'TFLOP/s':>8}"
    print(head)
    print("-" * len(head))
    for what, shape, ours, ref_name, ref, err, flops in rows:
        tflops = f"{flops / ours / 1e9:8.2f}" if flops else f"{'':>8}"
        print(
            f"{what:<29} {shape:<34} {ours:10.3f} {ref_name:<22} {ref:9.3f} "
            f"{ours / ref:6.1f}x {err:8.1e} {tflops}"
        )
    print("ratio = minidl time / reference time (how many times slower the teaching kernel is)")


# ---------------------------------------------------------------------- cuda-emu


def _smoke_emulated() -> int:
    """Run every family once on small inputs under the emulator and compare with cpu."""
    from minidl.backends import get_backend
    from minidl.backends.cpu import CpuBackend

    kb, cpu = get_backend("cuda-emu"), CpuBackend()
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x, w = rand(2, 3, 9, 7), rand(5, 3, 3, 2)
    s, p, d = (2, 1), (1, 1), (1, 2)
    y = cpu.conv2d(x, w, s, p, d)
    gy = rand(*y.shape)
    xg, g_g = rand(2, 19, 5, 3), rand(2, 19, 19)
    yp, idx = cpu.max_pool2d(x, (3, 3), (2, 2), (1, 1))
    gp = rand(*yp.shape)
    checks = [
        ("sgemm via conv2d", kb.conv2d(x, w, s, p, d), y),
        ("conv2d_grad_input", kb.conv2d_grad_input(gy, w, (9, 7), s, p, d),
         cpu.conv2d_grad_input(gy, w, (9, 7), s, p, d)),
        ("conv2d_grad_weight", kb.conv2d_grad_weight(x, gy, (3, 2), s, p, d),
         cpu.conv2d_grad_weight(x, gy, (3, 2), s, p, d)),
        ("max_pool2d", kb.max_pool2d(x, (3, 3), (2, 2), (1, 1))[0], yp),
        ("max_pool2d indices", kb.max_pool2d(x, (3, 3), (2, 2), (1, 1))[1], idx),
        ("max_pool2d_grad", kb.max_pool2d_grad(gp, idx, (9, 7), (3, 3), (2, 2), (1, 1)),
         cpu.max_pool2d_grad(gp, idx, (9, 7), (3, 3), (2, 2), (1, 1))),
        ("max_unpool2d", kb.max_unpool2d(yp, idx, (9, 7)), cpu.max_unpool2d(yp, idx, (9, 7))),
        ("max_unpool2d_grad", kb.max_unpool2d_grad(x, idx), cpu.max_unpool2d_grad(x, idx)),
        ("avg_pool2d", kb.avg_pool2d(x, (3, 2), (2, 1), (1, 1)),
         cpu.avg_pool2d(x, (3, 2), (2, 1), (1, 1))),
        ("gram", kb.gram(xg), cpu.gram(xg)),
        ("gram_grad", kb.gram_grad(g_g, xg), cpu.gram_grad(g_g, xg)),
    ]  # fmt: skip
    w3, one = rand(4, 3, 3, 3), (1, 1)
    with winograd.conv_algorithm("im2col"):
        want = cpu.conv2d(x, w3, one, one, one)
    with winograd.conv_algorithm("winograd"):
        checks.append(("winograd conv2d", kb.conv2d(x, w3, one, one, one), want))
    print("cuda-emu: the kernels run on CPU threads, so timings would mean nothing;")
    print("checking that each family runs and matches the cpu backend on a small case:")
    failed = 0
    for name, got, want in checks:
        err = _rel_err(got, want)
        ok = err <= 1e-4 and got.shape == want.shape
        failed += not ok
        print(
            f"  {name:<22} {'ok ' if ok else 'FAIL'}  shape {tuple(got.shape)}  rel err {err:.1e}"
        )
    print("all kernel families match" if not failed else f"{failed} check(s) FAILED")
    return 1 if failed else 0


def run_kernel_bench(device: str = "cuda") -> int:
    """Benchmark (cuda) or smoke-test (cuda-emu) every kernel family; return an exit code."""
    if device == "cuda":
        return _bench_cuda()
    if device == "cuda-emu":
        return _smoke_emulated()
    print(f"minidl bench --kernels: device must be 'cuda' or 'cuda-emu', not {device!r}")
    return 2
