// gemm.cu -- register-blocked single-precision matrix product (SGEMM),
// row-major, batched.
//
//     C[z] = alpha * op(A[z]) * op(B[z]) + beta * C[z]        z = 0 .. gridDim.z-1
//
// op(A) is M x K, op(B) is K x N, C is M x N.  Row-major storage with a
// "leading dimension": element (r, c) of a stored matrix X is X[r*ldx + c].
// ld may be larger than the number of columns, which lets a matrix be a band
// of columns inside a wider one (conv2d writes the columns of one chunk of
// output pixels into an image's (C_out x OH*OW) output this way).
//
//   transA == 0:  A is stored M x K, op(A)(m, k) = A[m*lda + k]
//   transA == 1:  A is stored K x M, op(A)(m, k) = A[k*lda + m]   (A transposed)
//   transB == 0:  B is stored K x N, op(B)(k, n) = B[k*ldb + n]
//   transB == 1:  B is stored N x K, op(B)(k, n) = B[n*ldb + k]
//
// Batch: matrix z starts at X + offX + z*strideX (stride 0 = same matrix for
// every z, e.g. the conv weights shared by all images).
//
// Thread-to-output mapping
// ------------------------
// A block of 16 x 16 = 256 threads computes one 64 x 64 tile of C; the grid
// is ceil(N/64) x ceil(M/64) x batch.  Each thread computes a 4 x 4 square of
// that tile, kept in registers (float acc[4][4]): thread (ty, tx) owns
//
//     C(row0 + 4*ty + i,  col0 + 4*tx + j)        i, j = 0..3
//
// so along the 64 columns of the tile:
//
//     column - col0:   0 1 2 3 | 4 5 6 7 | ... | 60 61 62 63
//     owned by tx:        0    |    1    | ... |     15
//
// and the same along the rows with ty.  (With bigger tiles -- change the
// numbers below -- a thread owns several such squares, 64 rows or columns
// apart: 4*ty + 64*g + i.)
//
// Why register blocking helps
// ---------------------------
// The simple tiled GEMM (one output per thread) does, for every step along
// k, two shared-memory loads (one of A, one of B) for ONE multiply-add.
// Shared memory is fast but not free, so the loads, not the arithmetic, set
// the pace.  Here a thread takes its 4 values of op(A) (its 4 rows) and its
// 4 of op(B) (its 4 columns) and does all 4 x 4 = 16 products of them (an
// outer product): each value is reused 4 times.  And its 4 values are
// consecutive floats, As[k][4*ty .. 4*ty+3] and Bs[k][4*tx .. 4*tx+3], so
// each group is ONE 16-byte load (a float4): 2 load instructions feed 16
// multiply-adds.  The 16 tx of a warp read 16 x 16 = 256 consecutive bytes
// of Bs (no two threads in the same bank within a 128-byte phase), and its
// two ty read two addresses of As, which shared memory broadcasts.
// One level up it is the same story: a block copies 64*16 + 16*64 = 2048
// floats from global memory per K step and does 64*64*16 = 65536 FMAs with
// them, 32 FMAs per float.
//
// Hiding the wait for global memory: double buffering
// -----------------------------------------------------
// A load from global memory takes hundreds of cycles.  A block that copies a
// piece, waits, computes, copies the next piece... leaves the arithmetic
// units idle during every copy.  So shared memory holds two pieces of each
// matrix: while the block computes with one, each thread has already issued
// the global loads of the next step into registers (they complete in the
// background) and stores them into the other buffer after its math.  One
// __syncthreads() per step then separates "next piece stored, current one no
// longer read" from the following step.
//
// The copies from global memory are vectorised too: each thread copies runs
// of four consecutive floats, each with one 16-byte load where the address
// allows it (see load_piece).
//
// Measured on an H200 (GPU time of all sgemm launches in one pass, from the
// profiler; the same run for each pair):
//
//                                        VGG16 512 px   Gatys loss 512 px
//   one buffer, 4 values 16 apart,
//     scalar loads (the first version)      4.29 ms         5.01 ms
//   two buffers, float4 from shared         4.08            4.70
//   ... and 16-byte global loads (this)     3.47            4.01
//
// (That last kernel stored B's runs into shared memory with four scalar
// stores; this file uses one 16-byte store there, checked in the emulator but
// not yet timed on a GPU.)
// and against cuBLAS (minidl bench --kernels): 1024^3 at 68% of cuBLAS's speed
// (26 TFLOP/s), VGG16's block1..3 conv products at 64-70%, block4 at 47%.
// Steps of BK = 32 were another 5% faster on VGG16 and slower on its smallest
// products; bigger tiles (64 x 128, 128 x 128 with 4 x 8 / 8 x 8 per thread)
// were within +-5% on VGG16 and 40-50% slower on 1024^3: a 1024 x 1024 C is
// only 64 tiles of 128 x 128 for the 132 multiprocessors of an H100/H200.
// cuBLAS adds warp-level tiling and deeper pipelines.
//
// The price of big blocks: a small C leaves a big GPU idle -- a 64 x 576
// product is only 9 blocks.  When C is small but K is long, the launch glue
// (minidl/backends/gemm.py) cuts K into slices that run side by side as a
// batch ("split-K"): on an H200 that took a 64 x 576 weight gradient summed
// over 50176 pixels from 55x to 2.5x cuBLAS's time.
//
// Sizes need not be multiples of the tile: loads outside the matrix store 0
// in shared memory (zeros add nothing to the dot products), and outputs
// outside C are not written.  Every thread still takes part in every load
// and every __syncthreads(): a thread that skipped a barrier would deadlock
// the block.

#define GEMM_TILE_M   64   // a block computes a GEMM_TILE_M x GEMM_TILE_N tile of C
#define GEMM_TILE_N   64
#define GEMM_BK       16   // the block walks along K in steps of GEMM_BK
#define GEMM_THREADS  16   // the block is GEMM_THREADS x GEMM_THREADS threads
// Derived sizes (the host reads only the plain numbers above).
#define GEMM_NTHREADS (GEMM_THREADS * GEMM_THREADS)          // 256 threads per block
#define GEMM_MICRO_M  (GEMM_TILE_M / GEMM_THREADS)           // rows per thread
#define GEMM_MICRO_N  (GEMM_TILE_N / GEMM_THREADS)           // columns per thread
#define GEMM_LOADS_A  (GEMM_TILE_M * GEMM_BK / GEMM_NTHREADS) // A elements each thread copies
#define GEMM_LOADS_B  (GEMM_TILE_N * GEMM_BK / GEMM_NTHREADS) // B elements each thread copies
#define GEMM_GROUP    (4 * GEMM_THREADS)  // a thread's groups of 4 rows/columns are this far apart
#define GEMM_PAD       4   // shared rows are TILE + 4 floats long (see the copies)
static_assert(GEMM_MICRO_M % 4 == 0 && GEMM_MICRO_N % 4 == 0, "micro-tiles come in groups of 4");
static_assert(GEMM_LOADS_A * GEMM_NTHREADS == GEMM_TILE_M * GEMM_BK, "threads must cover A's piece");
static_assert(GEMM_LOADS_B * GEMM_NTHREADS == GEMM_TILE_N * GEMM_BK, "threads must cover B's piece");
static_assert(GEMM_LOADS_A % 4 == 0 && GEMM_LOADS_B % 4 == 0, "threads copy runs of 4 elements");

// Four consecutive floats in one 16-byte load (the address must be a multiple
// of 16 bytes: a GPU stops the kernel with "misaligned address" otherwise).
__device__ __forceinline__ void load4(const float* from, float* to)
{
#ifdef MINIDL_CUDA_EMU
    minidl_emu::check_aligned(from, 16);  // the emulator reports what a GPU would
#endif
    const float4 v = *reinterpret_cast<const float4*>(from);
    to[0] = v.x; to[1] = v.y; to[2] = v.z; to[3] = v.w;
}

// ... and the same for a 16-byte store.
__device__ __forceinline__ void store4(float* to, const float* from)
{
#ifdef MINIDL_CUDA_EMU
    minidl_emu::check_aligned(to, 16);
#endif
    *reinterpret_cast<float4*>(to) = float4{from[0], from[1], from[2], from[3]};
}

// Where element e of a piece lies: its row r and its step k along K.  The
// elements are numbered in global-memory order, so e runs along k first where
// k is the stored matrix's contiguous index (`k_fast`), else along r.
template <int TILE>
__device__ __forceinline__ void piece_position(int e, bool k_fast, int& r, int& k)
{
    r = k_fast ? e / GEMM_BK : e % TILE;
    k = k_fast ? e % GEMM_BK : e / TILE;
}

// Copy this thread's LOADS elements of a (tile x GEMM_BK) piece of op(X) from
// global memory into registers, four consecutive ones at a time.  X is A
// (rows = m, limit M) or B seen as its transpose (rows = n, limit N); `k_fast`
// says whether k is the stored matrix's contiguous index.  Thread t copies the
// runs of four that start at elements e = 4t, 4(t + 256), ... (numbered in
// global-memory order, see piece_position): consecutive threads read
// consecutive 16 bytes, which the GPU "coalesces" into few memory
// transactions.  A run never crosses a stored row (GEMM_BK and the tile are
// multiples of 4), so it is ONE 16-byte load when its address is a multiple of
// 16 bytes -- `vec_ok`: the matrix starts on one and its rows are a multiple of
// 4 floats long -- and all four elements lie inside the matrix.  Otherwise (a
// band at an odd offset, a split-K slice of odd length, the matrix's edge) the
// four are read one by one, with zeros outside the matrix (they add nothing).
template <int TILE, int LOADS>
__device__ __forceinline__ void load_piece(const float* X, int ld, bool k_fast, bool vec_ok,
                                           int rows, int K, int row0, int k0, int t, float* out)
{
#pragma unroll
    for (int l = 0; l < LOADS / 4; ++l) {
        int r, k;  // where the run starts in the piece
        piece_position<TILE>(4 * (t + l * GEMM_NTHREADS), k_fast, r, k);
        const int gr = row0 + r, gk = k0 + k;
        const float* run = k_fast ? X + (gr * ld + gk) : X + (gk * ld + gr);
        const bool all_in = k_fast ? (gr < rows && gk + 3 < K) : (gk < K && gr + 3 < rows);
        if (vec_ok && all_in) {
            load4(run, &out[4 * l]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const bool in = k_fast ? (gr < rows && gk + j < K) : (gk < K && gr + j < rows);
                out[4 * l + j] = in ? run[j] : 0.0f;
            }
        }
    }
}

// Store what load_piece fetched into shared memory, k first: S[k][r], so that
// the inner loop reads along r (a thread's 4 consecutive rows: one float4).
// Rows of S are TILE + GEMM_PAD = 68 floats: a multiple of 4 keeps every float4
// aligned to 16 bytes, and the 4 extra floats move each k to another bank.
// Where k runs fastest (A not transposed) a run of four is a column of S, four
// stores S[k + j][r]; for each j a warp writes 8 rows r at 4 values of k, at
// banks (68*k + r) mod 32 = (4*k + r) mod 32: two threads per bank, where rows
// of 64 floats would put four there.  Otherwise a run is 4 floats of one row of
// S: one 16-byte store.
template <int TILE, int LOADS>
__device__ __forceinline__ void store_piece(float (*S)[TILE + GEMM_PAD], bool k_fast, int t,
                                            const float* in)
{
#pragma unroll
    for (int l = 0; l < LOADS / 4; ++l) {
        int r, k;
        piece_position<TILE>(4 * (t + l * GEMM_NTHREADS), k_fast, r, k);
        if (k_fast) {
#pragma unroll
            for (int j = 0; j < 4; ++j)
                S[k + j][r] = in[4 * l + j];
        } else {
            store4(&S[k][r], &in[4 * l]);
        }
    }
}

extern "C" __global__ void sgemm(int transA, int transB, int M, int N, int K,
                                 float alpha,
                                 const float* A, int offA, int lda, int strideA,
                                 const float* B, int offB, int ldb, int strideB,
                                 float beta,
                                 float* C, int offC, int ldc, int strideC)
{
    // Two of each piece ("double buffering"): while the block computes with
    // buffer `cur`, the next piece is fetched into registers and then stored
    // into the other buffer, so one __syncthreads() per step is enough.
    alignas(16) __shared__ float As[2][GEMM_BK][GEMM_TILE_M + GEMM_PAD];
    alignas(16) __shared__ float Bs[2][GEMM_BK][GEMM_TILE_N + GEMM_PAD];

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int t = ty * GEMM_THREADS + tx;        // 0..255; a warp = 32 consecutive t
    const int row0 = blockIdx.y * GEMM_TILE_M;   // first row of C of this block
    const int col0 = blockIdx.x * GEMM_TILE_N;   // first column of C
    const int z = blockIdx.z;                    // which matrix of the batch
    A += offA + z * strideA;
    B += offB + z * strideB;
    C += offC + z * strideC;
    // op(A) is read along k where A is stored M x K (not transposed); op(B)
    // where B is stored N x K (transposed).
    const bool a_k_fast = !transA, b_k_fast = transB;
    // 16-byte loads need every stored row to start on a multiple of 16 bytes.
    const bool a_vec = lda % 4 == 0 && reinterpret_cast<unsigned long long>(A) % 16 == 0;
    const bool b_vec = ldb % 4 == 0 && reinterpret_cast<unsigned long long>(B) % 16 == 0;

    float acc[GEMM_MICRO_M][GEMM_MICRO_N] = {};  // this thread's outputs
    float a_next[GEMM_LOADS_A], b_next[GEMM_LOADS_B];

    load_piece<GEMM_TILE_M, GEMM_LOADS_A>(A, lda, a_k_fast, a_vec, M, K, row0, 0, t, a_next);
    load_piece<GEMM_TILE_N, GEMM_LOADS_B>(B, ldb, b_k_fast, b_vec, N, K, col0, 0, t, b_next);
    store_piece<GEMM_TILE_M, GEMM_LOADS_A>(As[0], a_k_fast, t, a_next);
    store_piece<GEMM_TILE_N, GEMM_LOADS_B>(Bs[0], b_k_fast, t, b_next);
    __syncthreads();

    int cur = 0;
    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        const bool more = k0 + GEMM_BK < K;     // the same for every thread
        if (more) {  // start fetching the next piece; the loads fly during the math
            load_piece<GEMM_TILE_M, GEMM_LOADS_A>(A, lda, a_k_fast, a_vec, M, K, row0, k0 + GEMM_BK, t, a_next);
            load_piece<GEMM_TILE_N, GEMM_LOADS_B>(B, ldb, b_k_fast, b_vec, N, K, col0, k0 + GEMM_BK, t, b_next);
        }
#pragma unroll
        for (int k = 0; k < GEMM_BK; ++k) {
            // My rows: groups of 4 consecutive ones, 4*ty + GEMM_GROUP*g; each
            // group is one 16-byte float4 load.  The same for my columns.
            float a[GEMM_MICRO_M], b[GEMM_MICRO_N];
#pragma unroll
            for (int g = 0; g < GEMM_MICRO_M / 4; ++g)
                load4(&As[cur][k][4 * ty + GEMM_GROUP * g], &a[4 * g]);
#pragma unroll
            for (int g = 0; g < GEMM_MICRO_N / 4; ++g)
                load4(&Bs[cur][k][4 * tx + GEMM_GROUP * g], &b[4 * g]);
#pragma unroll
            for (int i = 0; i < GEMM_MICRO_M; ++i)
#pragma unroll
                for (int j = 0; j < GEMM_MICRO_N; ++j)
                    acc[i][j] += a[i] * b[j];    // an outer product in registers
        }
        if (more) {
            store_piece<GEMM_TILE_M, GEMM_LOADS_A>(As[cur ^ 1], a_k_fast, t, a_next);
            store_piece<GEMM_TILE_N, GEMM_LOADS_B>(Bs[cur ^ 1], b_k_fast, t, b_next);
        }
        __syncthreads();   // next piece stored, and everyone done with `cur`
        cur ^= 1;
    }

    // ---- write the micro-tile (only the outputs that lie inside C) ---------
#pragma unroll
    for (int i = 0; i < GEMM_MICRO_M; ++i) {
        const int row = row0 + 4 * ty + GEMM_GROUP * (i / 4) + i % 4;
#pragma unroll
        for (int j = 0; j < GEMM_MICRO_N; ++j) {
            const int col = col0 + 4 * tx + GEMM_GROUP * (j / 4) + j % 4;
            if (row < M && col < N) {
                float* c = &C[row * ldc + col];
                // BLAS convention: with beta == 0, C is not read (it may hold garbage).
                *c = (beta == 0.0f) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * (*c);
            }
        }
    }
}
