// cuda_emu.h -- run minidl's CUDA kernels on the CPU (device "cuda-emu").
//
// minidl/backends/emulated.py compiles every kernels/*.cu file with g++ and
// force-includes this header first (g++ -include kernels/cuda_emu.h), so the
// *same* kernel source that nvcc compiles for the GPU becomes ordinary C++.
// The kernels themselves include nothing CUDA-specific; code that must know
// it runs here can test `#ifdef MINIDL_CUDA_EMU`.
//
// What this header provides
// -------------------------
// * The CUDA keywords: __global__, __device__, __host__, __forceinline__,
//   __launch_bounds__(...) and __shared__ (see "Shared memory" below).
//   __restrict__ is understood by g++ itself.
// * The built-in variables threadIdx, blockIdx, blockDim, gridDim.  Each is a
//   `thread_local` global: every OS thread that plays a CUDA thread has its own.
// * float4, CUDA's 16-byte vector of four floats (kernels read float arrays
//   through float4 pointers: one load for four consecutive values), and
//   minidl_emu::check_aligned, see "How this differs from a GPU".
// * __syncthreads(), atomics (atomicAdd, atomicSub, atomicMax, atomicMin,
//   atomicExch, atomicCAS) built on std::atomic_ref, __ldg, and the CUDA math
//   functions that the C library lacks (rsqrtf, __expf, __int_as_float, ...).
// * The launcher, namespace minidl_emu, which runs a kernel over a grid.  The
//   Python side generates one small `extern "C"` wrapper per kernel that calls
//   minidl_emu::launch<&kernel>(...).
//
// Execution model
// ---------------
// There are two ways to run a grid; the Python side picks one per kernel by
// scanning the source (and `mode="threads"` forces the first):
//
// 1. Threads mode -- for kernels that use __syncthreads() or __shared__.
//    Each CUDA thread of a block is a real OS thread (std::thread), so a
//    barrier really blocks, as on a GPU.  A launch takes blockDim.x*y*z
//    threads from a pool (created on first use, parked between launches);
//    together they walk the blocks of the grid one block at a time: set
//    blockIdx, run the kernel body, wait at a block-end barrier, move to the
//    next block.  Only ONE block is ever in flight.
//    A thread that returns early drops out of the block's __syncthreads
//    barrier (std::barrier::arrive_and_drop), like an exited GPU thread, so
//    `if (i >= n) return;` before a __syncthreads() does not deadlock.
//
// 2. Loop mode -- for kernels with neither __syncthreads() nor __shared__.
//    Such a kernel cannot observe the order in which its threads run, so the
//    (block, thread) pairs are simply enumerated in a loop, split into chunks
//    over a few worker threads (std::thread::hardware_concurrency()).  This
//    gives exactly the same results and is far faster than one OS thread
//    per CUDA thread.  Should __syncthreads() be reached in loop mode anyway
//    (e.g. through a helper the source scan missed), the launch reports an
//    error instead of returning wrong numbers silently.
//
// Shared memory
// -------------
// `#define __shared__ static`: a __shared__ array becomes a function-local
// static variable, i.e. ONE array that all threads of the launch see.  Because
// threads mode runs one block at a time, that single array is exactly "memory
// private to the block".  Threads-mode launches of one kernel file are
// serialised (the thread pool runs one launch at a time), so two host threads
// cannot share it.  As on a GPU, shared memory is
// not cleared between blocks.  Dynamic shared memory (`extern __shared__`)
// is not supported.
//
// How this differs from a GPU -- read before trusting a passing test
// -----------------------------------------------------------------
// * No warps.  The OS schedules the threads of a block in any order; nothing
//   runs in lock-step groups of 32.  Warp-synchronous code (relying on the 32
//   threads of a warp staying in step without __syncthreads, or __shfl_*,
//   __ballot_sync, ...) is not emulated; the warp intrinsics are simply
//   missing, so such code does not compile.
// * A MISSING __syncthreads() IS NOT GUARANTEED TO FAIL here (nor on a GPU).
//   The schedule differs from a GPU's, so a race may hide on one and show on
//   the other.  Correct results in the emulator are evidence, not proof.
// * A __syncthreads() that only SOME threads of the block reach (inside an
//   if on threadIdx) is undefined behaviour on a GPU; here it is not reported
//   either: the threads that skip it leave the barrier's group, the others
//   pass it, and the results are simply wrong.
// * Blocks run one after another, never concurrently (threads mode).
// * Out-of-bounds accesses are not caught: they corrupt memory or crash the
//   whole Python process (a segfault cannot be turned into an exception).
//   MINIDL_EMU_CHECK=1 builds with AddressSanitizer to find them (see
//   emulated.py).
// * Misaligned vector accesses are not faults on a CPU.  On a GPU a float4
//   load or store at an address that is not a multiple of 16 bytes stops the
//   kernel ("misaligned address"); here it would just work.  Kernels call
//   minidl_emu::check_aligned(p, 16) before such an access (inside
//   #ifdef MINIDL_CUDA_EMU), and the launch then fails with the GPU's error.
// * Floating-point results can differ from the GPU in the last bits (other
//   instruction selection, FMA contraction, the __expf-style fast
//   intrinsics here are the precise functions).

#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include <unistd.h>  // getpid

#define MINIDL_CUDA_EMU 1

// ---------------------------------------------------------------------------
// Keywords
// ---------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// One static array per kernel == block-private while one block is in flight.
#define __shared__ static

// ---------------------------------------------------------------------------
// Built-in types and variables
// ---------------------------------------------------------------------------
struct uint3 {
    unsigned int x, y, z;
};

// CUDA's 16-byte vector type: one float4 load moves four consecutive floats.
// may_alias: kernels read float arrays through float4 pointers, which C++'s
// aliasing rules would otherwise let the compiler reorder.  Not aligned(16) as
// on a GPU: g++ would then use aligned SSE moves, and a misaligned address
// would crash the whole Python process instead of being reported by
// check_aligned (below) as the GPU's "misaligned address" error.
struct __attribute__((may_alias)) float4 {
    float x, y, z, w;
};

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

// Every OS thread playing a CUDA thread has its own copy (thread_local).
// The launcher below writes them; kernels only read them.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

// ---------------------------------------------------------------------------
// __syncthreads
// ---------------------------------------------------------------------------
namespace minidl_emu {
// The barrier of the block this OS thread is working on (threads mode), or
// nullptr in loop mode, where reaching a barrier is an error we report.
inline thread_local std::barrier<>* current_barrier = nullptr;
inline thread_local std::atomic<bool>* barrier_misuse_flag = nullptr;
}  // namespace minidl_emu

inline void __syncthreads() {
    if (minidl_emu::current_barrier != nullptr) {
        minidl_emu::current_barrier->arrive_and_wait();
    } else if (minidl_emu::barrier_misuse_flag != nullptr) {
        minidl_emu::barrier_misuse_flag->store(true);  // loop mode: report it
    }
}

// Memory fences: with one block in flight and sequentially consistent
// atomics there is nothing further to order.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---------------------------------------------------------------------------
// Atomics: return the old value, like CUDA's.
// ---------------------------------------------------------------------------
template <class T>
inline T atomicAdd(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}
template <class T>
inline T atomicSub(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_sub(value);
}
template <class T>
inline T atomicExch(T* address, T value) {
    return std::atomic_ref<T>(*address).exchange(value);
}
template <class T>
inline T atomicCAS(T* address, T compare, T value) {
    std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
    return compare;  // holds the old value whether or not the swap happened
}
template <class T>
inline T atomicMax(T* address, T value) {
    std::atomic_ref<T> ref(*address);
    T old = ref.load();
    while (old < value && !ref.compare_exchange_weak(old, value)) {
    }
    return old;
}
template <class T>
inline T atomicMin(T* address, T value) {
    std::atomic_ref<T> ref(*address);
    T old = ref.load();
    while (value < old && !ref.compare_exchange_weak(old, value)) {
    }
    return old;
}

// ---------------------------------------------------------------------------
// Loads and math functions CUDA has and C++ lacks (or names differently)
// ---------------------------------------------------------------------------
template <class T>
inline T __ldg(const T* p) { return *p; }

// CUDA's overloaded min/max.  One pair per type, so that e.g. int64_t (which
// is `long`, not `long long`, on Linux) is not ambiguous.
#define MINIDL_EMU_MIN_MAX(T)                          \
    inline T min(T a, T b) { return b < a ? b : a; } \
    inline T max(T a, T b) { return a < b ? b : a; }
MINIDL_EMU_MIN_MAX(int)
MINIDL_EMU_MIN_MAX(unsigned int)
MINIDL_EMU_MIN_MAX(long)
MINIDL_EMU_MIN_MAX(unsigned long)
MINIDL_EMU_MIN_MAX(long long)
MINIDL_EMU_MIN_MAX(unsigned long long)
#undef MINIDL_EMU_MIN_MAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline float __uint_as_float(unsigned int i) { return std::bit_cast<float>(i); }
inline unsigned int __float_as_uint(float f) { return std::bit_cast<unsigned int>(f); }

// ---------------------------------------------------------------------------
// The launcher
// ---------------------------------------------------------------------------
namespace minidl_emu {

// Values returned to Python by the generated minidl_launch_<name> wrappers.
enum Status : int {
    kOk = 0,
    kBarrierInLoopMode = 1,  // __syncthreads() reached in loop mode
    kThreadStartFailed = 2,  // the OS refused to create enough threads
    kMisalignedAddress = 3,  // check_aligned() saw an address a GPU would refuse
};

// Set by check_aligned() during a launch, read (and cleared) by launch().
inline std::atomic<bool> misaligned{false};

// A GPU's vector accesses need aligned addresses (16 bytes for a float4); a
// CPU's do not.  Kernels call this before one, so the emulator fails where a
// GPU would.
inline void check_aligned(const void* address, unsigned bytes) {
    if (reinterpret_cast<std::uintptr_t>(address) % bytes != 0) misaligned.store(true);
}

// Turn a linear index into (x, y, z) for a box of size `d`; x varies fastest.
inline uint3 unflatten(unsigned long long i, const dim3& d) {
    uint3 r;
    r.x = static_cast<unsigned int>(i % d.x);
    i /= d.x;
    r.y = static_cast<unsigned int>(i % d.y);
    r.z = static_cast<unsigned int>(i / d.y);
    return r;
}

// Run body() once per CUDA thread of the grid, barrier-free kernels only.
template <class Body>
int run_loop_mode(const dim3& grid, const dim3& block, Body& body) {
    const unsigned long long per_block = 1ull * block.x * block.y * block.z;
    const unsigned long long total = per_block * grid.x * grid.y * grid.z;
    std::atomic<bool> misuse{false};

    auto run_range = [&](unsigned long long begin, unsigned long long end) {
        gridDim = grid;
        blockDim = block;
        current_barrier = nullptr;
        barrier_misuse_flag = &misuse;
        for (unsigned long long i = begin; i < end; ++i) {
            blockIdx = unflatten(i / per_block, grid);
            threadIdx = unflatten(i % per_block, block);
            body();
        }
        barrier_misuse_flag = nullptr;  // `misuse` dies with this launch
    };

    // Starting an OS thread costs tens of microseconds: give each worker at
    // least this many CUDA threads, and run small grids on the calling thread.
    constexpr unsigned long long kMinPerWorker = 4096;
    unsigned long long workers = std::max(1u, std::thread::hardware_concurrency());
    workers = std::min(workers, (total + kMinPerWorker - 1) / kMinPerWorker);
    if (workers <= 1) {
        run_range(0, total);
    } else {
        // Worker w covers [total*w/workers, total*(w+1)/workers); the calling
        // thread is worker 0, and also covers the ranges of any worker the OS
        // refuses to start.
        std::vector<std::thread> pool;
        unsigned long long started = 1;
        for (; started < workers; ++started) {
            try {
                pool.emplace_back(run_range, total * started / workers,
                                  total * (started + 1) / workers);
            } catch (...) {
                break;
            }
        }
        run_range(0, total / workers);
        run_range(total * started / workers, total);  // empty unless a start failed
        for (auto& t : pool) t.join();
    }
    return misuse.load() ? kBarrierInLoopMode : kOk;
}

// OS threads that play CUDA threads, kept alive between launches: creating a
// thread costs tens of microseconds, so a 256-thread block would otherwise
// pay milliseconds per launch.  Idle threads sleep (std::atomic::wait).
class ThreadPool {
public:
    // The one pool of this kernel file's library.  Never destroyed: at exit
    // the parked threads simply end with the process.
    static ThreadPool& instance() {
        static ThreadPool* pool = new ThreadPool;
        return *pool;
    }

    // Run job(t) for t = 0 .. n-1, each on its own pool thread; return when
    // all have finished.  One job at a time.  Throws std::system_error if the
    // OS refuses to create enough threads.
    template <class Job>
    void run(unsigned n, Job& job) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (owner_pid_ != getpid()) forget_threads_after_fork();
        while (threads_->size() < n) {
            const unsigned t = static_cast<unsigned>(threads_->size());
            threads_->emplace_back([this, t] { worker(t); });
        }
        job_ = [](void* j, unsigned t) { (*static_cast<Job*>(j))(t); };
        job_data_ = &job;
        remaining_.store(n);
        for (unsigned t = 0; t < n; ++t) {  // wake exactly the first n threads
            wake_[t].fetch_add(1);
            wake_[t].notify_one();
        }
        for (unsigned left; (left = remaining_.load()) != 0;) remaining_.wait(left);
    }

private:
    static constexpr unsigned kMaxThreads = 1024;  // CUDA's threads per block

    ThreadPool() : threads_(new std::vector<std::thread>), owner_pid_(getpid()) {}

    void worker(unsigned t) {
        for (unsigned seen = 0;;) {
            wake_[t].wait(seen);  // sleep until run() bumps our counter
            seen = wake_[t].load();
            job_(job_data_, t);
            if (remaining_.fetch_sub(1) == 1) remaining_.notify_all();
        }
    }

    // After fork() the child has none of the parent's threads; start afresh.
    // (The old std::thread objects are leaked: destroying them would abort.)
    void forget_threads_after_fork() {
        threads_ = new std::vector<std::thread>;
        for (auto& w : wake_) w.store(0);
        owner_pid_ = getpid();
    }

    std::mutex mutex_;
    std::vector<std::thread>* threads_;
    pid_t owner_pid_;
    std::atomic<unsigned> wake_[kMaxThreads] = {};
    std::atomic<unsigned> remaining_{0};
    void (*job_)(void*, unsigned) = nullptr;
    void* job_data_ = nullptr;
};

// Run the grid with one OS thread per CUDA thread of a block (see the top).
template <class Body>
int run_threads_mode(const dim3& grid, const dim3& block, Body& body) {
    const unsigned n_threads = block.x * block.y * block.z;
    const unsigned long long n_blocks = 1ull * grid.x * grid.y * grid.z;

    // `sync` is the block's __syncthreads barrier.  Threads that finish the
    // kernel leave it with arrive_and_drop(), so it needs a fresh one per block;
    // the block-end barrier's completion step (run once, while every thread is
    // waiting there) rebuilds it.
    std::optional<std::barrier<>> sync;
    sync.emplace(n_threads);
    auto next_block = [&]() noexcept { sync.emplace(n_threads); };
    std::barrier block_end(n_threads, next_block);

    auto cuda_thread = [&](unsigned t) {
        gridDim = grid;
        blockDim = block;
        threadIdx = unflatten(t, block);
        for (unsigned long long b = 0; b < n_blocks; ++b) {
            blockIdx = unflatten(b, grid);
            current_barrier = &*sync;
            body();
            sync->arrive_and_drop();     // this thread has exited the kernel
            block_end.arrive_and_wait();  // wait for the whole block, then next
        }
        current_barrier = nullptr;
    };
    try {
        ThreadPool::instance().run(n_threads, cuda_thread);
    } catch (const std::system_error&) {
        return kThreadStartFailed;  // nothing ran: run() starts no job half-staffed
    }
    return kOk;
}

// Split a kernel's function type into its parameter types P...
template <auto Kernel, class F = decltype(Kernel)>
struct KernelTraits;
template <auto Kernel, class... P>
struct KernelTraits<Kernel, void (*)(P...)> {
    // The parameters by value: `const float* __restrict__ x` -> const float*.
    using Values = std::tuple<std::remove_cv_t<P>...>;

    // args[i] points at the value of parameter i (as in cuLaunchKernel).
    template <std::size_t... I>
    static Values unpack(void** args, std::index_sequence<I...>) {
        return Values(*static_cast<std::remove_cv_t<P>*>(args[I])...);
    }
    static Values unpack(void** args) { return unpack(args, std::index_sequence_for<P...>{}); }
};

// Launch `Kernel` over the grid; called by the generated extern "C" wrapper.
template <auto Kernel>
int launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
           void** args, int use_threads) {
    using Traits = KernelTraits<Kernel>;
    const typename Traits::Values values = Traits::unpack(args);
    auto body = [&values] { std::apply(Kernel, values); };
    const dim3 grid(gx, gy, gz), block(bx, by, bz);
    misaligned.store(false);
    // ThreadPool::run takes one job at a time, so two host threads never run
    // this file's kernels (and share their __shared__ statics) at once.
    const int status = use_threads ? run_threads_mode(grid, block, body)
                                   : run_loop_mode(grid, block, body);
    return status == kOk && misaligned.load() ? kMisalignedAddress : status;
}

}  // namespace minidl_emu
