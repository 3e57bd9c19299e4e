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
// is ceil(N/64) x ceil(M/64) x batch.  Each thread computes a 4 x 4
// "micro-tile" of that tile, kept in registers (float acc[4][4]).  Thread
// (ty, tx) owns the 16 outputs
//
//     C(row0 + ty + 16*i,  col0 + tx + 16*j)        i, j = 0..3
//
// i.e. its rows are 16 apart and so are its columns (strided, not a
// contiguous 4 x 4 square).  Along the 64 columns of the tile:
//
//     column - col0:   0  1 .. 15 | 16 17 .. 31 | 32 .. 47 | 48 .. 63
//     owned by tx:     0  1 .. 15 |  0  1 .. 15 |  0 .. 15 |  0 .. 15
//                      (j = 0)      (j = 1)       (j = 2)    (j = 3)
//
// and the same along the rows with ty and i.
//
// Why strided?  At each step the 16 threads tx = 0..15 of a row read their
// column j from shared memory at Bs[k][tx + 16*j]: 16 *consecutive* floats,
// which sit in 16 different shared-memory banks (bank = address mod 32), so
// the read takes one cycle.  (Their A values As[k][ty + 16*i] are one address
// per row of threads, which shared memory broadcasts: no conflict either.)
// With contiguous micro-tiles (columns 4*tx + j)
// the addresses would be 4 apart and two threads would share a bank (a
// 2-way "bank conflict": the read takes two cycles).  The same choice makes
// the final writes of C coalesced: for fixed (i, j), consecutive tx write
// consecutive columns.  (Contiguous squares can instead be read with one
// 16-byte float4 load each for A and B, 2 loads per step instead of 8.
// Measured on an H200 that was 13% faster on 1024^3 but 20-35% slower on
// VGG16's conv shapes, so the strided layout stays.)
//
// Why register blocking helps
// ---------------------------
// The simple tiled GEMM (one output per thread) does, for every step along
// k, two shared-memory loads (one of A, one of B) for ONE multiply-add.
// Shared memory is fast but not free, so the loads, not the arithmetic, set
// the pace.  Here a thread loads 4 values of op(A) (its 4 rows) and 4 of
// op(B) (its 4 columns) into registers and does all 4 x 4 = 16 products of
// them (an outer product): each value loaded is reused 4 times, 16 FMAs for
// 8 loads instead of 1 FMA for 2 -- four times the arithmetic per load.
// One level up it is the same story: a block copies 64*16 + 16*64 = 2048
// floats from global memory per K step and does 64*64*16 = 65536 FMAs with
// them, 32 FMAs per float (the 16 x 16 one-output tiles did 8).
// And since each block covers 16 times more of C, there are 16 times fewer
// blocks: 16x fewer barrier waits overall, which is also what makes this
// version much faster in the CPU emulator, where every __syncthreads() is
// expensive.
//
// The price: fewer, bigger blocks.  A small C leaves a big GPU idle -- a
// 64 x 1024 product is only 16 blocks for the 132 multiprocessors of an
// H100/H200, and there the one-output-per-thread version (256 blocks) was
// faster.  On large products (1024^3 and up) this version measured 3 to 3.6
// times faster on an H200.  When C is small but K is long, the launch glue
// (minidl/backends/gemm.py) cuts K into slices that run side by side as a
// batch ("split-K"): on an H200 that took a 64 x 576 weight gradient summed
// over 50176 pixels from 55x to 4x cuBLAS's time.
//
// Bigger still is not better here: 128 x 128 tiles with 8 x 8 micro-tiles
// (change the four numbers below; the code follows) ran at 10 TFLOP/s on an
// H200 against 19 for these, on 1024^3 and on VGG16's shapes alike.
//
// Sizes need not be multiples of the tile: loads outside the matrix store 0
// in shared memory (zeros add nothing to the dot products), and outputs
// outside C are not written.  Every thread still takes part in every load
// and every __syncthreads(): a thread that skipped a barrier would deadlock
// the block.

#define GEMM_TILE      64   // a block computes a GEMM_TILE x GEMM_TILE tile of C
#define GEMM_BK        16   // the block walks along K in steps of GEMM_BK
#define GEMM_THREADS   16   // the block is GEMM_THREADS x GEMM_THREADS threads
#define GEMM_MICRO      4   // each thread: a GEMM_MICRO x GEMM_MICRO micro-tile
#define GEMM_NTHREADS 256   // threads per block
#define GEMM_LOADS      4   // elements of each piece that one thread copies
// How the numbers must fit together (plain numbers above, so that the host
// can read GEMM_TILE and GEMM_THREADS from this file; checked here).
static_assert(GEMM_MICRO * GEMM_THREADS == GEMM_TILE, "micro-tiles must cover the tile");
static_assert(GEMM_NTHREADS == GEMM_THREADS * GEMM_THREADS, "256 threads");
static_assert(GEMM_LOADS * GEMM_NTHREADS == GEMM_TILE * GEMM_BK, "threads must cover a piece");

extern "C" __global__ void sgemm(int transA, int transB, int M, int N, int K,
                                 float alpha,
                                 const float* A, int offA, int lda, int strideA,
                                 const float* B, int offB, int ldb, int strideB,
                                 float beta,
                                 float* C, int offC, int ldc, int strideC)
{
    // Both pieces are stored with k first, so that the inner loop reads one
    // *row* of each: As[k][m] = op(A)(row0 + m, k0 + k), Bs[k][n] = op(B)(k0 + k, col0 + n).
    //
    // The +2 columns of padding avoid bank conflicts when the piece is copied
    // in (see the loads below): when op(A) is read along k, the 32 threads of
    // a warp write As[k][m] and As[k][m+1] for k = 0..15.  With rows of 64
    // floats, As[0][m], As[1][m], ... are 64 floats apart and all fall in the
    // same bank: 16 threads would wait for each other.  With rows of 66 floats
    // the address is 66*k + m, i.e. bank (2*k + m) mod 32: k = 0..15 takes 16
    // banks of one parity for column m and the other 16 for column m+1.
    // (Padding 1 would leave 2-way conflicts: bank k + m, and (k+1) + m
    // collides with k + (m+1).)
    __shared__ float As[GEMM_BK][GEMM_TILE + 2];
    __shared__ float Bs[GEMM_BK][GEMM_TILE + 2];

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int t = ty * GEMM_THREADS + tx;        // 0..255; a warp = 32 consecutive t
    const int row0 = blockIdx.y * GEMM_TILE;     // first row of C of this block
    const int col0 = blockIdx.x * GEMM_TILE;     // first column of C
    const int z = blockIdx.z;                    // which matrix of the batch

    A += offA + z * strideA;
    B += offB + z * strideB;
    C += offC + z * strideC;

    float acc[GEMM_MICRO][GEMM_MICRO];           // this thread's 4 x 4 outputs
#pragma unroll
    for (int i = 0; i < GEMM_MICRO; ++i)
#pragma unroll
        for (int j = 0; j < GEMM_MICRO; ++j)
            acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        // ---- copy the 64 x 16 piece of op(A) (rows row0.., columns k0..) --
        // Number the 1024 elements of the piece in the order they are stored
        // in global memory; thread t copies elements e = t, t+256, t+512,
        // t+768.  Consecutive threads then read consecutive addresses: the
        // loads of a warp are "coalesced" into few memory transactions.
#pragma unroll
        for (int l = 0; l < GEMM_LOADS; ++l) {
            const int e = t + l * GEMM_NTHREADS;
            int m, k;
            if (!transA) {
                // A stored M x K: k is contiguous, so e runs along k first.
                k = e % GEMM_BK;
                m = e / GEMM_BK;
            } else {
                // A stored K x M: m is contiguous, so e runs along m first.
                m = e % GEMM_TILE;
                k = e / GEMM_TILE;
            }
            const int gm = row0 + m, gk = k0 + k;    // position in op(A)
            float v = 0.0f;
            if (gm < M && gk < K)
                v = transA ? A[gk * lda + gm] : A[gm * lda + gk];
            As[k][m] = v;
        }
        // ---- copy the 16 x 64 piece of op(B) (rows k0.., columns col0..) --
#pragma unroll
        for (int l = 0; l < GEMM_LOADS; ++l) {
            const int e = t + l * GEMM_NTHREADS;
            int k, n;
            if (!transB) {
                // B stored K x N: n is contiguous, so e runs along n first.
                n = e % GEMM_TILE;
                k = e / GEMM_TILE;
            } else {
                // B stored N x K: k is contiguous, so e runs along k first.
                k = e % GEMM_BK;
                n = e / GEMM_BK;
            }
            const int gk = k0 + k, gn = col0 + n;    // position in op(B)
            float v = 0.0f;
            if (gk < K && gn < N)
                v = transB ? B[gn * ldb + gk] : B[gk * ldb + gn];
            Bs[k][n] = v;
        }
        __syncthreads();                 // pieces complete before anyone reads

        // ---- 16 outer products, entirely in registers ----------------------
#pragma unroll
        for (int k = 0; k < GEMM_BK; ++k) {
            float a[GEMM_MICRO], b[GEMM_MICRO];
#pragma unroll
            for (int i = 0; i < GEMM_MICRO; ++i)
                a[i] = As[k][ty + i * GEMM_THREADS];   // op(A)(my row i, k)
#pragma unroll
            for (int j = 0; j < GEMM_MICRO; ++j)
                b[j] = Bs[k][tx + j * GEMM_THREADS];   // op(B)(k, my column j)
#pragma unroll
            for (int i = 0; i < GEMM_MICRO; ++i)
#pragma unroll
                for (int j = 0; j < GEMM_MICRO; ++j)
                    acc[i][j] += a[i] * b[j];          // 16 FMAs for 8 loads
        }
        __syncthreads();                 // everyone done before pieces are overwritten
    }

    // ---- write the micro-tile (only the outputs that lie inside C) ---------
#pragma unroll
    for (int i = 0; i < GEMM_MICRO; ++i) {
        const int row = row0 + ty + i * GEMM_THREADS;
#pragma unroll
        for (int j = 0; j < GEMM_MICRO; ++j) {
            const int col = col0 + tx + j * GEMM_THREADS;
            if (row < M && col < N) {
                float* c = &C[row * ldc + col];
                // BLAS convention: with beta == 0, C is not read (it may hold garbage).
                *c = (beta == 0.0f) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * (*c);
            }
        }
    }
}
