// winograd.cu -- 3x3 stride-1 convolution by Winograd minimal filtering F(m x m, 3x3).
//
// The idea (minidl/backends/winograd.py has the NumPy version and the maths):
// cut the output into m x m tiles.  Each tile needs an A x A input tile d
// (A = m + 2; neighbouring input tiles overlap by 2), and
//
//     Y = At [ U (.) V ] At^T      U = G g G^T     (each 3x3 filter g, once)
//                                  V = Bt d Bt^T   (each input tile)
//
// where (.) is the elementwise product of two A x A arrays.  Summing over the
// input channels turns the A*A elementwise products into A*A matrix products:
//
//     M[p] (K x T) = U[p] (K x C) . V[p] (C x T)     p = 0 .. A*A-1
//
// (K output channels, C input channels, T tiles), done by sgemm in gemm.cu as
// one batched GEMM (batch A*A).  The kernels here are the transforms around it.
//
// Buffers (float32, row-major, p = alpha*A + beta the position in the A x A tile):
//
//     U[p][k][c]      transformed filters          (A*A, K, C)
//     V[p][c][t]      transformed input tiles      (A*A, C, T)
//     M[p][k][t]      products, after the GEMM     (A*A, K, T)
//
// Tiles: the output (OH x OW) is covered by TH x TW tiles, TW = ceil(OW/m).
// The host may do one image n and a band of tile rows r0 .. r0+rn-1 at a time
// (so V and M stay small); then T = rn*TW and tile t of the band is tile row
// r = r0 + t / TW, tile column q = t % TW.  Its outputs are pixels
// (r*m + i, q*m + j), 0 <= i, j < m, and it reads input pixels
//
//     h = r*m - PH + i,   w = q*m - PW + j,     0 <= i, j < A
//
// as 0 where (h, w) falls outside the image (the padding), as im2col.cu does.
//
// Thread mapping: every kernel is a 1-D grid-stride loop (see im2col.cu) over
// independent items, and every item writes its own outputs (no atomics):
//
//     winograd_weight_transform       one item = one filter (k, c): writes U[.][k][c]
//     winograd_input_transform        one item = one (c, t): reads one input tile, writes V[.][c][t]
//     winograd_output_transform       one item = one (k, t): reads M[.][k][t], writes one output tile
//     winograd_output_grad_transform  one item = one (k, t): reads one gy tile, writes gM[.][k][t]
//     winograd_weight_grad_transform  one item = one (k, c): reads dU[.][k][c], writes gw[k][c]
//
// Consecutive threads take consecutive t (or c), the fastest index of V and M,
// so their writes to V and M are coalesced.
//
// The three convolution passes:
//     conv2d              weight_transform, input_transform, GEMM, output_transform
//     conv2d_grad_input   the same, with the filter rotated by 180 degrees and its
//                         channels swapped (weight_transform's `adjoint` flag) and
//                         padding 2 - P: the adjoint of a stride-1 conv is a conv
//     conv2d_grad_weight  input_transform of x, output_grad_transform of gy, the
//                         GEMM dU[p] += gM[p] . V[p]^T, weight_grad_transform

// The output tile size m: 4 (F(4x4, 3x3), 36 products per 16 outputs) or
// 2 (F(2x2, 3x3), 16 per 4; smaller numbers in the matrices, so more precise).
// The launches read both numbers from here.
#define WINO_M 4
#define WINO_A (WINO_M + 2)

// The matrices of Lavin & Gray (2015): Bt (A x A), G (A x 3), At (m x A).
#if WINO_M == 4
__device__ const float WINO_BT[WINO_A][WINO_A] = {
    {4, 0, -5, 0, 1, 0},
    {0, -4, -4, 1, 1, 0},
    {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0},
    {0, 2, -1, -2, 1, 0},
    {0, 4, 0, -5, 0, 1}};
__device__ const float WINO_G[WINO_A][3] = {
    {1.0f / 4, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0, 0, 1}};
__device__ const float WINO_AT[WINO_M][WINO_A] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0},
    {0, 1, 1, 4, 4, 0},
    {0, 1, -1, 8, -8, 1}};
#elif WINO_M == 2
__device__ const float WINO_BT[WINO_A][WINO_A] = {
    {1, 0, -1, 0},
    {0, 1, 1, 0},
    {0, -1, 1, 0},
    {0, 1, 0, -1}};
__device__ const float WINO_G[WINO_A][3] = {
    {1, 0, 0},
    {0.5f, 0.5f, 0.5f},
    {0.5f, -0.5f, 0.5f},
    {0, 0, 1}};
__device__ const float WINO_AT[WINO_M][WINO_A] = {
    {1, 1, 1, 0},
    {0, 1, -1, -1}};
#else
#error "WINO_M must be 2 or 4"
#endif

// out (R x R) = L . in (S x S) . L^T for a small matrix L (R x S), element (r, s)
// at L[r*S + s].  The loops have compile-time bounds: nvcc unrolls them and folds
// the constant zeros of L away.
template <int R, int S>
__device__ __forceinline__ void sandwich(const float* L, const float* in, float* out)
{
    float half[R][S];                        // half = L . in
    for (int r = 0; r < R; ++r)
        for (int s = 0; s < S; ++s) {
            float acc = 0.0f;
            for (int k = 0; k < S; ++k) acc += L[r * S + k] * in[k * S + s];
            half[r][s] = acc;
        }
    for (int r = 0; r < R; ++r)              // out = half . L^T
        for (int q = 0; q < R; ++q) {
            float acc = 0.0f;
            for (int k = 0; k < S; ++k) acc += half[r][k] * L[q * S + k];
            out[r * R + q] = acc;
        }
}

// U[p][k][c] = (G g G^T)[p] with g = w[k][c] (w: K x C x 3 x 3).  With adjoint = 1,
// w is the (C x K x 3 x 3) filter of the forward conv and g = w[c][k] rotated by
// 180 degrees: the filter of conv2d_grad_input.
extern "C" __global__ void winograd_weight_transform(const float* w, float* U,
                                                     int K, int C, int adjoint)
{
    const int total = K * C;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        int c = t % C, k = t / C;
        float g[9], u[WINO_A * WINO_A];
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
                g[i * 3 + j] = adjoint ? w[(c * K + k) * 9 + (2 - i) * 3 + (2 - j)]
                                       : w[t * 9 + i * 3 + j];
        // U = G g G^T: G is A x 3, so this is sandwich<A, 3> with a 3 x 3 middle.
        float half[WINO_A][3];
        for (int a = 0; a < WINO_A; ++a)
            for (int j = 0; j < 3; ++j)
                half[a][j] = WINO_G[a][0] * g[j] + WINO_G[a][1] * g[3 + j] + WINO_G[a][2] * g[6 + j];
        for (int a = 0; a < WINO_A; ++a)
            for (int b = 0; b < WINO_A; ++b)
                u[a * WINO_A + b] = half[a][0] * WINO_G[b][0] + half[a][1] * WINO_G[b][1]
                                  + half[a][2] * WINO_G[b][2];
        for (int p = 0; p < WINO_A * WINO_A; ++p) U[(p * K + k) * C + c] = u[p];
    }
}

// V[p][c][t] = (Bt d Bt^T)[p] for the input tile d of channel c, tile t of the band.
extern "C" __global__ void winograd_input_transform(const float* x, float* V, int n, int C,
                                                    int H, int W, int PH, int PW,
                                                    int TW, int r0, int rn)
{
    const int T = rn * TW;
    const int total = C * T;
    for (int item = blockIdx.x * blockDim.x + threadIdx.x; item < total;
         item += gridDim.x * blockDim.x) {
        int t = item % T, c = item / T;
        int h0 = (r0 + t / TW) * WINO_M - PH;   // top-left input pixel of the tile
        int w0 = (t % TW) * WINO_M - PW;
        const float* plane = x + (n * C + c) * H * W;
        float d[WINO_A * WINO_A], v[WINO_A * WINO_A];
        for (int i = 0; i < WINO_A; ++i)
            for (int j = 0; j < WINO_A; ++j) {
                int h = h0 + i, w = w0 + j;
                d[i * WINO_A + j] = (h >= 0 && h < H && w >= 0 && w < W) ? plane[h * W + w] : 0.0f;
            }
        sandwich<WINO_A, WINO_A>(&WINO_BT[0][0], d, v);
        for (int p = 0; p < WINO_A * WINO_A; ++p) V[(p * C + c) * T + t] = v[p];
    }
}

// One output tile: y[n][k] at rows r*m.., columns q*m.. = (At M[.][k][t] At^T),
// clipped to OH x OW (the last tiles may stick out).  y is written, not added to.
extern "C" __global__ void winograd_output_transform(const float* M, float* y, int n, int K,
                                                     int OH, int OW, int TW, int r0, int rn)
{
    const int T = rn * TW;
    const int total = K * T;
    for (int item = blockIdx.x * blockDim.x + threadIdx.x; item < total;
         item += gridDim.x * blockDim.x) {
        int t = item % T, k = item / T;
        float m[WINO_A * WINO_A], out[WINO_M * WINO_M];
        for (int p = 0; p < WINO_A * WINO_A; ++p) m[p] = M[(p * K + k) * T + t];
        sandwich<WINO_M, WINO_A>(&WINO_AT[0][0], m, out);
        int h0 = (r0 + t / TW) * WINO_M, w0 = (t % TW) * WINO_M;
        float* plane = y + (n * K + k) * OH * OW;
        for (int i = 0; i < WINO_M; ++i)
            for (int j = 0; j < WINO_M; ++j)
                if (h0 + i < OH && w0 + j < OW) plane[(h0 + i) * OW + w0 + j] = out[i * WINO_M + j];
    }
}

// The adjoint of winograd_output_transform: gM[p][k][t] = (At^T gY At)[p] for the
// m x m tile gY of gy (0 where the tile sticks out of OH x OW).
extern "C" __global__ void winograd_output_grad_transform(const float* gy, float* gM, int n,
                                                          int K, int OH, int OW, int TW,
                                                          int r0, int rn)
{
    const int T = rn * TW;
    const int total = K * T;
    for (int item = blockIdx.x * blockDim.x + threadIdx.x; item < total;
         item += gridDim.x * blockDim.x) {
        int t = item % T, k = item / T;
        int h0 = (r0 + t / TW) * WINO_M, w0 = (t % TW) * WINO_M;
        const float* plane = gy + (n * K + k) * OH * OW;
        float g[WINO_M * WINO_M], half[WINO_A][WINO_M];
        for (int i = 0; i < WINO_M; ++i)
            for (int j = 0; j < WINO_M; ++j) {
                int h = h0 + i, w = w0 + j;
                g[i * WINO_M + j] = (h < OH && w < OW) ? plane[h * OW + w] : 0.0f;
            }
        for (int a = 0; a < WINO_A; ++a)       // half = At^T gY  (A x m)
            for (int j = 0; j < WINO_M; ++j) {
                float acc = 0.0f;
                for (int i = 0; i < WINO_M; ++i) acc += WINO_AT[i][a] * g[i * WINO_M + j];
                half[a][j] = acc;
            }
        for (int a = 0; a < WINO_A; ++a)       // gM = half At  (A x A)
            for (int b = 0; b < WINO_A; ++b) {
                float acc = 0.0f;
                for (int j = 0; j < WINO_M; ++j) acc += half[a][j] * WINO_AT[j][b];
                gM[((a * WINO_A + b) * K + k) * T + t] = acc;
            }
    }
}

// The adjoint of winograd_weight_transform: gw[k][c] = G^T dU[.][k][c] G (3 x 3).
extern "C" __global__ void winograd_weight_grad_transform(const float* dU, float* gw, int K, int C)
{
    const int total = K * C;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        int c = t % C, k = t / C;
        float half[3][WINO_A];                 // half = G^T dU  (3 x A)
        for (int i = 0; i < 3; ++i)
            for (int b = 0; b < WINO_A; ++b) {
                float acc = 0.0f;
                for (int a = 0; a < WINO_A; ++a)
                    acc += WINO_G[a][i] * dU[((a * WINO_A + b) * K + k) * C + c];
                half[i][b] = acc;
            }
        for (int i = 0; i < 3; ++i)            // gw = half G  (3 x 3)
            for (int j = 0; j < 3; ++j) {
                float acc = 0.0f;
                for (int b = 0; b < WINO_A; ++b) acc += half[i][b] * WINO_G[b][j];
                gw[t * 9 + i * 3 + j] = acc;
            }
    }
}
