// gram.cu -- batched Gram matrices for style transfer.
//
//     G[n] = F F^T / (C*H*W)       F = x[n] viewed as a C x P matrix, P = H*W
//
// G[n](a, b) = sum_p F(a, p) * F(b, p) / (C*P): the correlation of channels a
// and b over all pixels.  G is symmetric, G(a, b) = G(b, a), so we compute
// only the tiles on and below the diagonal and write each result twice.
//
// Thread mapping: G is cut into TILE x TILE tiles; tile (ti, tj) covers rows
// ti*TILE.. and columns tj*TILE..  Only tiles with tj <= ti are launched:
// with nt = ceil(C/TILE) there are nt*(nt+1)/2 of them, numbered row by row
//
//     blockIdx.x:   0        1  2      3  4  5      ...
//     (ti, tj):   (0,0)  (1,0)(1,1) (2,0)(2,1)(2,2)  ...
//
// and blockIdx.y is the image n.  Thread (ty, tx) of the block computes
// G(a, b) with a = ti*TILE + ty, b = tj*TILE + tx, and also stores it at
// G(b, a).  As in gemm.cu, the block walks over the pixels p in steps of TILE,
// staging a TILE x TILE piece of rows a.. and rows b.. of F in shared memory.
//
// Split-K: G is small (64 x 64 for VGG16's block1) but each entry sums over
// every pixel (262144 at 512 px), so the triangle alone would be 10 blocks for
// a GPU of 132 multiprocessors, each walking all the pixels by itself.  So the
// pixels are cut into gridDim.z slices of `slice` pixels: block z sums only
// its slice, into its own partial matrix Gs[z][n], and the host adds the
// partials up (with one slice, Gs is G itself).

#define GRAM_TILE 16

extern "C" __global__ void gram(const float* x, float* Gs, int C, int P, int slice, float scale)
{
    // Rows of 17 floats (+1 padding): reading Fb[tx][q] walks a column, and
    // the padding puts its 16 elements in 16 different shared-memory banks.
    __shared__ float Fa[GRAM_TILE][GRAM_TILE + 1];   // Fa[r][q] = F(ti*TILE + r, p0 + q)
    __shared__ float Fb[GRAM_TILE][GRAM_TILE + 1];   // Fb[r][q] = F(tj*TILE + r, p0 + q)

    // Turn the block number into the tile (ti, tj), tj <= ti: row ti of the
    // lower triangle holds ti + 1 tiles, so subtract rows until we are in one.
    int t = blockIdx.x, ti = 0;
    while (t > ti) {
        t -= ti + 1;
        ++ti;
    }
    const int tj = t;

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int n = blockIdx.y, z = blockIdx.z;
    const float* F = x + n * C * P;                  // image n as a C x P matrix
    float* Gn = Gs + (z * gridDim.y + n) * C * C;    // partial z of image n
    const int p_end = min(P, (z + 1) * slice);       // this block's pixels: z*slice ..

    float acc = 0.0f;
    for (int p0 = z * slice; p0 < p_end; p0 += GRAM_TILE) {
        // Each thread copies one element of each tile; p0 + tx is contiguous
        // in memory across tx, so the loads are coalesced.
        int p = p0 + tx;
        int ra = ti * GRAM_TILE + ty, rb = tj * GRAM_TILE + ty;
        Fa[ty][tx] = (ra < C && p < p_end) ? F[ra * P + p] : 0.0f;
        Fb[ty][tx] = (rb < C && p < p_end) ? F[rb * P + p] : 0.0f;
        __syncthreads();

        for (int q = 0; q < GRAM_TILE; ++q)
            acc += Fa[ty][q] * Fb[tx][q];            // row a of F . row b of F
        __syncthreads();
    }

    const int a = ti * GRAM_TILE + ty, b = tj * GRAM_TILE + tx;
    if (a < C && b < C) {
        Gn[a * C + b] = acc * scale;                 // the tile ...
        if (ti != tj) Gn[b * C + a] = acc * scale;   // ... and its mirror image
    }
}
