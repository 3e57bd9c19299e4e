// gemm.cu -- tiled single-precision matrix product (SGEMM), row-major, batched.
//
//     C[z] = alpha * op(A[z]) * op(B[z]) + beta * C[z]        z = 0 .. gridDim.z-1
//
// op(A) is M x K, op(B) is K x N, C is M x N.  Row-major storage with a
// "leading dimension": element (r, c) of a stored matrix X is X[r*ldx + c].
// ld may be larger than the number of columns, which lets C be a block of
// rows inside a bigger array (conv2d writes a chunk of output rows this way).
//
//   transA == 0:  A is stored M x K, op(A)(m, k) = A[m*lda + k]
//   transA == 1:  A is stored K x M, op(A)(m, k) = A[k*lda + m]   (A transposed)
//   transB == 0:  B is stored K x N, op(B)(k, n) = B[k*ldb + n]
//   transB == 1:  B is stored N x K, op(B)(k, n) = B[n*ldb + k]
//
// Batch: matrix z starts at X + offX + z*strideX (stride 0 = same matrix for
// every z, e.g. the conv weights shared by all images).
//
// Thread mapping: a block of TILE x TILE threads computes one TILE x TILE tile
// of C; thread (ty, tx) owns C(row, col) with row = blockIdx.y*TILE + ty and
// col = blockIdx.x*TILE + tx.  The grid is ceil(N/TILE) x ceil(M/TILE) x batch.
//
// Why tiles?  C(row, col) needs a whole row of op(A) and a whole column of
// op(B).  Threads in the same block need the same rows and columns, so the
// block walks along K in steps of TILE: all threads together copy one
// TILE x TILE piece of op(A) and of op(B) into fast on-chip __shared__ memory
// (each thread copies ONE element of each), wait (__syncthreads), then every
// thread does TILE multiply-adds from shared memory.  Each element loaded from
// global memory is reused TILE times.
//
// Sizes need not be multiples of TILE: loads outside the matrix store 0 in
// shared memory (zeros add nothing to the dot product), and threads outside C
// do not write.  They must still take part in the loads and in __syncthreads:
// a thread that skipped a barrier would deadlock the block.

#define GEMM_TILE 16

extern "C" __global__ void sgemm(int transA, int transB, int M, int N, int K,
                                 float alpha,
                                 const float* A, int offA, int lda, int strideA,
                                 const float* B, int offB, int ldb, int strideB,
                                 float beta,
                                 float* C, int offC, int ldc, int strideC)
{
    // The +1 column of padding: threads of a warp that read a *column* of
    // a tile (As[tx][ty] below, for transposed operands) would otherwise hit
    // the same shared-memory bank 16 times.  With rows of 17 floats, the 16
    // elements of a column fall in 16 different banks.
    __shared__ float As[GEMM_TILE][GEMM_TILE + 1];   // As[m][k]: piece of op(A)
    __shared__ float Bs[GEMM_TILE][GEMM_TILE + 1];   // Bs[k][n]: piece of op(B)

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row0 = blockIdx.y * GEMM_TILE;     // first row of C of this block
    const int col0 = blockIdx.x * GEMM_TILE;     // first column of C
    const int z = blockIdx.z;                    // which matrix of the batch

    A += offA + z * strideA;
    B += offB + z * strideB;
    C += offC + z * strideC;

    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += GEMM_TILE) {
        // ---- load one tile of op(A): rows row0.., columns k0.. ----------
        // Consecutive threads (tx) should read consecutive addresses
        // ("coalesced" loads), so the roles of tx/ty follow the storage:
        if (!transA) {
            // A stored M x K: moving along k is contiguous -> k follows tx.
            int m = row0 + ty, k = k0 + tx;
            As[ty][tx] = (m < M && k < K) ? A[m * lda + k] : 0.0f;
        } else {
            // A stored K x M: moving along m is contiguous -> m follows tx.
            int m = row0 + tx, k = k0 + ty;
            As[tx][ty] = (m < M && k < K) ? A[k * lda + m] : 0.0f;
        }
        // ---- load one tile of op(B): rows k0.., columns col0.. ----------
        if (!transB) {
            // B stored K x N: n contiguous -> n follows tx.
            int k = k0 + ty, n = col0 + tx;
            Bs[ty][tx] = (k < K && n < N) ? B[k * ldb + n] : 0.0f;
        } else {
            // B stored N x K: k contiguous -> k follows tx.
            int k = k0 + tx, n = col0 + ty;
            Bs[tx][ty] = (k < K && n < N) ? B[n * ldb + k] : 0.0f;
        }
        __syncthreads();                 // tiles complete before anyone reads

        for (int q = 0; q < GEMM_TILE; ++q)
            acc += As[ty][q] * Bs[q][tx];
        __syncthreads();                 // everyone done before tiles are overwritten
    }

    const int row = row0 + ty, col = col0 + tx;
    if (row < M && col < N) {
        float* c = &C[row * ldc + col];
        // BLAS convention: with beta == 0, C is not read (it may hold garbage).
        *c = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * (*c);
    }
}
