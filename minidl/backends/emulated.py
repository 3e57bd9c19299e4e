"""The CUDA emulator: run minidl's ``kernels/*.cu`` on the CPU (device ``"cuda-emu"``).

This file is *tooling*, not part of the model of computation: it exists so that
the kernels can be tested, stepped through and changed on a machine without a
GPU.  Nothing here is needed to understand what a kernel computes -- read
``kernels/*.cu`` and ``backends/cuda.py`` for that; read on to see how CUDA C
runs as ordinary threads.

On a GPU, ``backends/cuda.py`` loads the kernels with ``cupy.RawModule`` and launches
them with ``module.get_function(name)(grid, block, args)``.  This module offers the
same interface without a GPU:

    >>> module = EmulatedModule(["kernels/pool.cu"])
    >>> avg_pool = module.get_function("avg_pool2d_forward")
    >>> x = np.ones((1, 1, 4, 4), np.float32); y = np.empty((1, 1, 2, 2), np.float32)
    >>> sizes = [1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0]   # NC, H, W, OH, OW, KH, KW, SH, SW, PH, PW
    >>> avg_pool((1,), (256,), (x, y, *map(np.int32, sizes)))

where the arrays are ordinary C-contiguous numpy arrays standing for device pointers.

How it works
------------
1. **Compile.**  Each ``.cu`` file is compiled by g++ as C++20 into its own shared
   library, with ``kernels/cuda_emu.h`` force-included (``g++ -include``).  That
   header defines the CUDA keywords and built-ins (``__global__``, ``threadIdx``,
   ``__syncthreads`` ...), so the kernel source needs no changes.
2. **Wrap.**  Python finds every ``extern "C" __global__ void name(...)`` in the
   source with a regular expression and generates a tiny C++ wrapper
   ``minidl_launch_<name>(gx, gy, gz, bx, by, bz, void** args, int use_threads)``
   that unpacks the arguments and runs the grid (``minidl_emu::launch`` in the
   header).  The generated file is kept next to the library in the cache, for
   anyone curious.
3. **Cache.**  Libraries are cached in ``$XDG_CACHE_HOME/minidl/emu`` (default
   ``~/.cache/minidl/emu``) under the SHA-256 of the header, the source, its local
   ``#include "..."`` files, the wrapper and the compiler flags; the second load of
   an unchanged kernel costs a ``dlopen``.  A library is written under a temporary
   name and renamed into place, so concurrent processes never see half a file.
4. **Check and launch.**  The parsed signature lets Python check each launch
   *before* it reaches C++, where a mistake would corrupt memory: argument count,
   array vs. scalar, dtype of every array and scalar, C-contiguity, writability of
   arrays behind non-``const`` pointers, and CUDA's grid/block limits.  ctypes
   releases the GIL during the launch.

Execution model
---------------
* Kernels that use ``__syncthreads()`` or ``__shared__`` (directly or through a
  helper function in the same file) run in **threads mode**: each CUDA thread of a
  block is a real OS thread, so a barrier really blocks; the threads walk the grid
  one block at a time, which makes ``__shared__`` (a ``static`` array) private to
  the block.
* All other kernels run in **loop mode**: their CUDA threads are a plain loop split
  over a few worker threads.  A kernel without barriers or shared memory cannot
  tell the difference, and this is much faster.  Pass ``mode="threads"`` to
  :class:`EmulatedModule` to run everything in threads mode.

The header ``kernels/cuda_emu.h`` explains both in detail.

Cost (2-core machine, roughly)
------------------------------
* A launch costs about 12 us (argument checks and the ctypes call).
* Loop mode runs about 10 ns per CUDA thread of a trivial kernel.
* Threads mode pays for OS context switches: waking a 256-thread block costs about
  1 ms, and every ``__syncthreads()`` about 1.5 us per thread (0.4 ms for 256
  threads).  A tiled GEMM in threads mode is therefore thousands of times slower
  than on a GPU -- fine for tests on small shapes, not for training.

Limits -- how the emulator differs from a GPU
---------------------------------------------
* **No warps.**  Threads are scheduled by the OS, never in lock-step groups of 32;
  warp-synchronous code and warp intrinsics (``__shfl_*``) are not emulated.
* **A missing ``__syncthreads()`` is not guaranteed to fail** -- neither here nor on
  a GPU; the schedules differ, so a race may show on one and hide on the other.
* **Out-of-bounds accesses are not caught.**  They corrupt memory or kill the
  Python process with a segfault, which cannot be turned into an exception.  To
  hunt one, build with AddressSanitizer::

      MINIDL_EMU_CHECK=1 ASAN_OPTIONS=detect_leaks=0 \\
          LD_PRELOAD=$(g++ -print-file-name=libasan.so) python my_script.py

  (the preload is needed because Python itself is not built with ASan).
* Dynamic shared memory (``extern __shared__``, ``shared_mem=`` > 0) is not supported.

Scalar arguments
----------------
Scalars must be numpy scalars of exactly the type the kernel declares
(``np.int32`` for ``int``, ``np.float32`` for ``float``, ``np.int64`` for
``long long``/``int64_t``...).  Python ``int``/``float`` are *refused*, on purpose:
cupy would pass them as 64-bit values, which an ``int`` or ``float`` parameter
misreads on a real GPU -- the emulator catches that bug before the GPU does.

Environment variables
---------------------
``MINIDL_EMU_CXX``    the compiler (default ``g++``)
``MINIDL_EMU_CHECK``  ``1``: compile with ``-fsanitize=address`` (see above)
``XDG_CACHE_HOME``    where the cache directory lives
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from minidl.paths import kernels_dir, user_cache_dir

__all__ = [
    "EmulatedKernel",
    "EmulatedModule",
    "KernelNotFoundError",
    "KernelParam",
    "KernelSignature",
    "cache_dir",
    "emulator_available",
    "parse_kernels",
    "shim_path",
]


def shim_path() -> Path:
    """The shim header force-included into every kernel file: ``cuda_emu.h`` in the
    kernel folder (see :func:`minidl.paths.kernels_dir`)."""
    return kernels_dir() / "cuda_emu.h"


#: Compiler flags; ``-fvisibility=hidden`` keeps each file's helpers to itself.
CXX_FLAGS = (
    "-x",
    "c++",
    "-std=c++20",
    "-O2",
    "-fPIC",
    "-shared",
    "-pthread",
    "-fvisibility=hidden",
)
ASAN_FLAGS = ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")

# CUDA's limits (compute capability >= 3.0).
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_THREADS_PER_BLOCK = 1024
MAX_GRID_DIMS = (2**31 - 1, 65535, 65535)

# Bumped when the generated wrapper changes, so stale libraries are not reused.
_WRAPPER_VERSION = "1"

#: How many libraries this process compiled (the tests check that the cache works).
compile_count = 0
_compile_lock = threading.Lock()


# ---------------------------------------------------------------------------
# Parsing kernel signatures
# ---------------------------------------------------------------------------

# C type of a parameter (qualifiers removed) -> numpy dtype.  ``void`` is only
# valid behind a pointer and accepts any dtype.  ``long`` is 64 bits on Linux,
# on the CPU and the GPU alike.
_C_TYPES = {
    "float": np.float32,
    "double": np.float64,
    "char": np.int8,
    "signed char": np.int8,
    "unsigned char": np.uint8,
    "short": np.int16,
    "short int": np.int16,
    "unsigned short": np.uint16,
    "int": np.int32,
    "signed": np.int32,
    "signed int": np.int32,
    "unsigned": np.uint32,
    "unsigned int": np.uint32,
    "long": np.int64,
    "long int": np.int64,
    "long long": np.int64,
    "long long int": np.int64,
    "unsigned long": np.uint64,
    "unsigned long long": np.uint64,
    "unsigned long long int": np.uint64,
    "int8_t": np.int8,
    "uint8_t": np.uint8,
    "int16_t": np.int16,
    "uint16_t": np.uint16,
    "int32_t": np.int32,
    "uint32_t": np.uint32,
    "int64_t": np.int64,
    "uint64_t": np.uint64,
    "size_t": np.uint64,
    "ptrdiff_t": np.int64,
    "bool": np.bool_,
    "void": None,
}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}

_KERNEL_RE = re.compile(
    r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?'
    r"void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)\s*\{"
)
_FUNCTION_RE = re.compile(r"\b(\w+)\s*\([^;{}]*\)\s*(?:const\s*)?\{")
_NOT_FUNCTIONS = {"if", "for", "while", "switch", "catch", "return", "sizeof"}


@dataclasses.dataclass(frozen=True)
class KernelParam:
    """One parameter of a kernel, e.g. ``const float* __restrict__ x``."""

    name: str
    text: str  # as written in the source
    is_pointer: bool
    dtype: np.dtype | None  # element type for pointers; None: void* or unknown type
    is_const: bool  # pointers: is the pointee const (read-only)?
    supported: bool  # False: a type the emulator cannot pass from Python

    def describe(self) -> str:
        return f"argument {self.name!r} ({self.text})"


@dataclasses.dataclass(frozen=True)
class KernelSignature:
    """A kernel's name, parameters and whether it needs threads mode."""

    name: str
    params: tuple[KernelParam, ...]
    uses_barrier: bool  # __syncthreads or __shared__, directly or via helpers
    path: Path | None = None


def _strip_comments(source: str) -> str:
    """Blank out comments and preprocessor lines, keeping line breaks (and so line numbers).

    Preprocessor lines go too: ``#define MICRO (TILE / THREADS)`` would otherwise look
    like the start of a function named MICRO to the function finder below.
    """

    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    code = re.sub(r"//[^\n]*|/\*.*?\*/", blank, source, flags=re.DOTALL)
    return re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", blank, code, flags=re.MULTILINE)


def _parse_param(text: str, index: int) -> KernelParam:
    """Parse one declaration such as ``const float* __restrict__ x`` or ``long long n``."""
    text = " ".join(text.split())  # one line, single spaces
    tokens = re.findall(r"\w+|\*|\[", text)
    name = f"arg{index}"
    if len(tokens) >= 2 and re.fullmatch(r"\w+", tokens[-1]) and tokens[-1] not in _QUALIFIERS:
        name = tokens.pop()
    elif len(tokens) >= 3 and tokens[-1] == "[":  # `float x[]`
        name = tokens[-2]
        del tokens[-2]
    stars = sum(t in ("*", "[") for t in tokens)
    first_star = next((i for i, t in enumerate(tokens) if t in ("*", "[")), len(tokens))
    base_words = [t for t in tokens[:first_star] if t not in _QUALIFIERS]
    is_const = "const" in tokens[:first_star]
    base = " ".join(base_words)
    known = base in _C_TYPES and stars <= 1 and (base != "void" or stars == 1)
    dtype = np.dtype(_C_TYPES[base]) if known and _C_TYPES[base] is not None else None
    return KernelParam(
        name=name, text=text, is_pointer=stars >= 1, dtype=dtype, is_const=is_const, supported=known
    )


def _function_bodies(source: str) -> dict[str, str]:
    """Map each function defined in ``source`` to its body (a rough, regex-level parse).

    Good enough to ask "does this function, or a function it calls, use
    ``__syncthreads`` / ``__shared__``?"  Control statements (``if (...) {``) are
    skipped; functions defined twice (overloads) get their bodies concatenated.
    """
    bodies: dict[str, str] = {}
    for match in _FUNCTION_RE.finditer(source):
        name = match.group(1)
        if name in _NOT_FUNCTIONS:
            continue
        depth, start = 0, match.end() - 1
        for end in range(start, len(source)):
            depth += {"{": 1, "}": -1}.get(source[end], 0)
            if depth == 0:
                break
        bodies[name] = bodies.get(name, "") + source[start : end + 1]
    return bodies


def _barrier_users(source: str) -> set[str]:
    """Names of the functions that reach ``__syncthreads``/``__shared__``, also via calls."""
    bodies = _function_bodies(source)
    users = {n for n, b in bodies.items() if re.search(r"__syncthreads|__shared__", b)}
    changed = True
    while changed:  # a function calling a barrier user is one too, transitively
        changed = False
        for name, body in bodies.items():
            if name not in users and any(re.search(rf"\b{u}\b", body) for u in users):
                users.add(name)
                changed = True
    return users


def parse_kernels(source: str, path: Path | None = None) -> list[KernelSignature]:
    """Find every ``extern "C" __global__ void name(params) {`` in a CUDA source."""
    code = _strip_comments(source)
    users = _barrier_users(code)
    kernels = []
    for match in _KERNEL_RE.finditer(code):
        name, param_text = match.group(1), match.group(2)
        pieces = [p for p in param_text.split(",")]
        if len(pieces) == 1 and pieces[0].strip() in ("", "void"):
            pieces = []
        params = tuple(_parse_param(p, i) for i, p in enumerate(pieces))
        kernels.append(KernelSignature(name, params, name in users, path))
    return kernels


# ---------------------------------------------------------------------------
# Compiling and caching
# ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``emu/`` in the user cache folder."""
    return user_cache_dir() / "emu"


def _compiler() -> str:
    """The compiler's full path, or a RuntimeError saying how to install one."""
    name = os.environ.get("MINIDL_EMU_CXX", "g++")
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"the CUDA emulator (device 'cuda-emu') needs a C++20 compiler, but {name!r} "
            "was not found on PATH. Install g++ (Debian/Ubuntu: apt-get install g++; "
            "Fedora: dnf install gcc-c++; macOS: xcode-select --install) or point "
            "MINIDL_EMU_CXX at one."
        )
    return found


def _flags() -> tuple[str, ...]:
    """The compiler flags; with MINIDL_EMU_CHECK=1, AddressSanitizer's too."""
    if os.environ.get("MINIDL_EMU_CHECK", "") in ("", "0"):
        return CXX_FLAGS
    # An ASan library loaded into a Python without ASan aborts the process
    # unless the ASan runtime was preloaded: say so instead.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        raise RuntimeError(
            "MINIDL_EMU_CHECK=1 builds the kernels with AddressSanitizer, whose runtime "
            "must be loaded before Python starts. Run:\n"
            "  MINIDL_EMU_CHECK=1 ASAN_OPTIONS=detect_leaks=0 "
            "LD_PRELOAD=$(g++ -print-file-name=libasan.so) python ..."
        )
    return CXX_FLAGS + ASAN_FLAGS


def _wrapper_source(path: Path, kernels: list[KernelSignature]) -> str:
    """The generated C++ file: the kernel source plus one launcher per kernel."""
    lines = [
        f"// Generated by minidl/backends/emulated.py from {path}.",
        "// cuda_emu.h was force-included (g++ -include) before this line.",
        f'#include "{path}"',
        "",
    ]
    for k in kernels:
        lines += [
            f'extern "C" __attribute__((visibility("default"))) int minidl_launch_{k.name}(',
            "    unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,",
            "    void** args, int use_threads) {",
            f"  return minidl_emu::launch<&{k.name}>(gx, gy, gz, bx, by, bz, args, use_threads);",
            "}",
            "",
        ]
    return "\n".join(lines)


def _local_includes(path: Path, seen: set[Path] | None = None) -> list[Path]:
    """``#include "..."`` files next to ``path``, recursively (they go into the cache key)."""
    seen = set() if seen is None else seen
    found = []
    for name in re.findall(r'#\s*include\s*"([^"]+)"', path.read_text(errors="replace")):
        inc = (path.parent / name).resolve()
        if inc.is_file() and inc not in seen:
            seen.add(inc)
            found += [inc, *_local_includes(inc, seen)]
    return found


def _compile(path: Path, kernels: list[KernelSignature]) -> Path:
    """Compile one .cu file (or find it in the cache); return the library's path."""
    global compile_count
    shim = shim_path()
    if not shim.is_file():
        raise RuntimeError(f"the emulator's header {shim} is missing")
    cxx, flags = _compiler(), _flags()
    wrapper = _wrapper_source(path, kernels)
    key = hashlib.sha256()
    for part in [_WRAPPER_VERSION, cxx, *flags, wrapper, shim.read_text()]:
        key.update(part.encode() + b"\0")
    for file in [path, *_local_includes(path)]:
        key.update(file.read_bytes() + b"\0")
    directory = cache_dir()
    library = directory / f"{path.stem}-{key.hexdigest()[:32]}.so"
    if library.is_file():
        return library

    directory.mkdir(parents=True, exist_ok=True)
    wrapper_file = library.with_suffix(".cpp")
    # Temporary names unique to this process, then an atomic rename.
    fd, tmp_lib = tempfile.mkstemp(dir=directory, prefix=library.stem, suffix=".so.tmp")
    os.close(fd)
    fd, tmp_cpp = tempfile.mkstemp(dir=directory, prefix=library.stem, suffix=".cpp.tmp")
    with os.fdopen(fd, "w") as f:
        f.write(wrapper)
    # The wrapper goes to its final name first (its content is fixed by the hash, so
    # processes racing here write the same file), so that the compiler's messages
    # point at a file the student can open.
    os.replace(tmp_cpp, wrapper_file)
    command = [cxx, *flags, "-include", str(shim), "-o", tmp_lib, str(wrapper_file)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"compiling {path} for the CUDA emulator failed "
                f"(header {shim}, generated wrapper {wrapper_file}).\n"
                f"command: {' '.join(command)}\n"
                f"compiler output:\n{result.stderr[-8000:]}"
            )
        os.replace(tmp_lib, library)
    finally:
        if os.path.exists(tmp_lib):
            os.remove(tmp_lib)
    with _compile_lock:
        compile_count += 1
    return library


# ---------------------------------------------------------------------------
# The cupy.RawModule look-alike
# ---------------------------------------------------------------------------

_STATUS_MESSAGES = {
    1: "reached __syncthreads() in loop mode: the source scan found no barrier in this "
    "kernel, so its threads ran as a plain loop and the results are invalid. "
    "Write __syncthreads() (or __shared__) in the kernel's body or in a function of the "
    "same file, not behind a macro, or load the file with EmulatedModule(paths, mode='threads').",
    2: "the operating system refused to create one thread per CUDA thread of the block; "
    "use smaller blocks or raise the thread limit (ulimit -u).",
    3: "misaligned address: a 16-byte (float4) load or store at an address that is not a "
    "multiple of 16 bytes. A GPU stops the kernel with this error; check the alignment "
    "before the vector access, or read the four floats one by one.",
}


class EmulatedKernel:
    """One kernel of an :class:`EmulatedModule`; call it like a cupy ``RawKernel``."""

    def __init__(self, signature: KernelSignature, function, use_threads: bool):
        self.name = signature.name
        self.signature = signature
        self.use_threads = use_threads  # threads mode (True) or loop mode
        self._function = function
        unsupported = [p for p in signature.params if not p.supported]
        if unsupported:
            raise TypeError(
                f"kernel {self.name!r}: the emulator cannot pass {unsupported[0].describe()}; "
                "supported are scalars and single pointers of the C number types "
                f"({', '.join(sorted(k for k in _C_TYPES if k != 'void'))}) and void*"
            )

    def __repr__(self) -> str:
        mode = "threads" if self.use_threads else "loop"
        params = ", ".join(p.text for p in self.signature.params)
        return f"<EmulatedKernel {self.name}({params}), {mode} mode>"

    def __call__(self, grid, block, args, *, shared_mem: int = 0, stream=None):
        """Run the kernel over ``grid`` blocks of ``block`` threads (ints or 1-3 tuples).

        ``args`` is a tuple with one entry per kernel parameter: a C-contiguous
        numpy array for each pointer, a numpy scalar of the declared type for each
        scalar.  Returns when every thread has finished.
        """
        if shared_mem:
            raise ValueError(
                f"kernel {self.name!r}: dynamic shared memory (shared_mem={shared_mem}) "
                "is not supported by the CUDA emulator; use a fixed-size __shared__ array"
            )
        g = _dims(grid, "grid", self.name, MAX_GRID_DIMS)
        b = _dims(block, "block", self.name, MAX_BLOCK_DIMS)
        if b[0] * b[1] * b[2] > MAX_THREADS_PER_BLOCK:
            raise ValueError(
                f"kernel {self.name!r}: block {tuple(block) if isinstance(block, (tuple, list)) else block} "
                f"has {b[0] * b[1] * b[2]} threads; CUDA allows at most {MAX_THREADS_PER_BLOCK}"
            )
        slots = self._pack(args)
        pointers = (ctypes.c_void_p * max(1, len(slots)))(
            *(slots.ctypes.data + 8 * i for i in range(len(slots)))
        )
        status = self._function(*g, *b, pointers, int(self.use_threads))
        if status != 0:
            raise RuntimeError(f"kernel {self.name!r}: {_STATUS_MESSAGES.get(status, status)}")

    def _pack(self, args) -> np.ndarray:
        """Check ``args`` against the signature; return one 8-byte slot per argument.

        Slot i holds argument i's value: an array's data pointer or the scalar's
        bytes.  The launcher receives the address of each slot.
        """
        params = self.signature.params
        if not isinstance(args, (tuple, list)):
            raise TypeError(
                f"kernel {self.name!r}: args must be a tuple, got {type(args).__name__}"
            )
        if len(args) != len(params):
            raise TypeError(
                f"kernel {self.name!r} takes {len(params)} arguments "
                f"({', '.join(p.text for p in params)}), got {len(args)}"
            )
        slots = np.zeros(len(params), dtype=np.uint64)
        for i, (param, value) in enumerate(zip(params, args)):
            where = f"kernel {self.name!r}, argument {i} {param.name!r} ({param.text.strip()})"
            if param.is_pointer:
                _check_array(value, param, where)
                slots[i] = value.ctypes.data
            else:
                _check_scalar(value, param, where)
                slots[i : i + 1].view(param.dtype)[0] = value
        return slots


def _dims(value, what: str, kernel: str, limits: tuple[int, int, int]) -> tuple[int, int, int]:
    """Normalise a grid/block given as an int or a tuple of 1-3 ints to (x, y, z)."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(items) <= 3 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
    ):
        raise TypeError(
            f"kernel {kernel!r}: {what} must be an int or a tuple of 1 to 3 ints, got {value!r}"
        )
    dims = tuple(int(v) for v in items) + (1,) * (3 - len(items))
    for axis, size, limit in zip("xyz", dims, limits):
        if not 1 <= size <= limit:
            raise ValueError(
                f"kernel {kernel!r}: {what} {value!r} has {what}.{axis} = {size}; "
                f"CUDA allows 1 to {limit}"
            )
    return dims  # type: ignore[return-value]


def _check_array(value, param: KernelParam, where: str) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array, got {type(value).__name__}")
    if param.dtype is not None and value.dtype != param.dtype:
        raise TypeError(f"{where}: expected a {param.dtype} array, got {value.dtype}")
    if not value.flags.c_contiguous:
        raise ValueError(
            f"{where}: the array (shape {value.shape}, strides {value.strides}) is not "
            "C-contiguous; pass np.ascontiguousarray(x)"
        )
    if not param.is_const and not value.flags.writeable:
        raise ValueError(
            f"{where}: the kernel may write through this non-const pointer, "
            "but the array is read-only"
        )


def _check_scalar(value, param: KernelParam, where: str) -> None:
    if isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected a np.{param.dtype} scalar, got an array")
    if not isinstance(value, np.generic):
        raise TypeError(
            f"{where}: expected a np.{param.dtype} scalar, got Python "
            f"{type(value).__name__} {value!r}; wrap it, e.g. np.{param.dtype}({value!r}) "
            "(cupy would pass a Python number as 64 bits, wrong on a real GPU)"
        )
    if value.dtype != param.dtype:
        raise TypeError(f"{where}: expected a np.{param.dtype} scalar, got np.{value.dtype}")


class KernelNotFoundError(KeyError):
    """``get_function`` of a name the sources do not define (a KeyError, readable message)."""

    def __str__(self) -> str:
        return str(self.args[0])


class EmulatedModule:
    """The kernels of some ``.cu`` files, compiled for the CPU; like ``cupy.RawModule``.

    ``paths``: one path or a list of paths to ``.cu`` files.  Each file is compiled
    into its own library (cached on disk), so helpers with the same name in two
    files do not clash.  ``mode``: ``"auto"`` (threads mode only for kernels that
    use ``__syncthreads``/``__shared__``) or ``"threads"`` (threads mode always).
    Raises RuntimeError if g++ is missing or a file does not compile.
    """

    def __init__(self, paths, *, mode: str = "auto"):
        if mode not in ("auto", "threads"):
            raise ValueError(f"mode must be 'auto' or 'threads', got {mode!r}")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p).resolve() for p in paths]
        self.mode = mode
        per_file = []
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"CUDA source {path} not found")
            per_file.append(parse_kernels(path.read_text(), path))
        self.signatures: dict[str, KernelSignature] = {}
        for path, kernels in zip(self.paths, per_file):
            for k in kernels:
                if k.name in self.signatures:
                    raise ValueError(
                        f"kernel {k.name!r} is defined in both {self.signatures[k.name].path} "
                        f"and {path}"
                    )
                self.signatures[k.name] = k
        _compiler()  # fail early with the install hint
        # g++ takes about a second per file: compile the files in parallel.
        with ThreadPoolExecutor(
            max_workers=max(1, min(len(self.paths), os.cpu_count() or 1))
        ) as ex:
            libraries = list(ex.map(_compile, self.paths, per_file))
        self._libraries = {p: ctypes.CDLL(str(lib)) for p, lib in zip(self.paths, libraries)}
        self._kernels: dict[str, EmulatedKernel] = {}

    def kernel_names(self) -> list[str]:
        """The names of all kernels found in the sources."""
        return list(self.signatures)

    def get_function(self, name: str) -> EmulatedKernel:
        """The kernel called ``name``; KernelNotFoundError (a KeyError) if there is none."""
        if name not in self._kernels:
            if name not in self.signatures:
                raise KernelNotFoundError(
                    f'no kernel {name!r} (extern "C" __global__ void ...) in '
                    f"{', '.join(str(p) for p in self.paths)}; found: "
                    f"{', '.join(self.signatures) or 'none'}"
                )
            signature = self.signatures[name]
            function = getattr(self._libraries[signature.path], f"minidl_launch_{name}")
            function.restype = ctypes.c_int
            function.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_void_p, ctypes.c_int]
            use_threads = self.mode == "threads" or signature.uses_barrier
            self._kernels[name] = EmulatedKernel(signature, function, use_threads)
        return self._kernels[name]


# ---------------------------------------------------------------------------
# For `minidl doctor`
# ---------------------------------------------------------------------------

_PROBE_SOURCE = """\
extern "C" __global__ void minidl_probe(float* out, int n) {
    __shared__ float tile[32];
    tile[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int i = 0; i < 32; ++i) s += tile[i];
        atomicAdd(out, s);
    }
}
"""


def emulator_available() -> tuple[bool, str]:
    """Can the emulator run here?  Returns (ok, reason), compiling a tiny test kernel."""
    try:
        cxx = _compiler()
        version = subprocess.run(
            [cxx, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True, check=False
        ).stdout.strip()
        # A fixed path, so the probe is compiled once and then found in the cache.
        probe = cache_dir() / "probe" / "minidl_probe.cu"
        probe.parent.mkdir(parents=True, exist_ok=True)
        if not probe.is_file() or probe.read_text() != _PROBE_SOURCE:
            probe.write_text(_PROBE_SOURCE)
        kernel = EmulatedModule([probe]).get_function("minidl_probe")
        out = np.zeros(1, dtype=np.float32)
        kernel((4,), (32,), (out, np.int32(0)))
        if out[0] != 128.0:
            return False, f"the test kernel computed {out[0]} instead of 128.0"
        return True, f"{cxx} {version}; kernels cached in {cache_dir()}"
    except Exception as error:  # noqa: BLE001 -- doctor reports any failure as the reason
        return False, str(error)
