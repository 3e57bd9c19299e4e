// im2col.cu -- unfold image patches into columns, and the adjoint (col2im).
//
// Convolution as a matrix product.  For one image x[n] (C, H, W) and a kernel
// w (C_out, C, KH, KW), every output pixel (oh, ow) is the dot product of w
// with the C*KH*KW input values under the kernel window.  If we copy those
// values into column number l = oh*OW + ow of a matrix `col` (K rows, K =
// C*KH*KW), the whole convolution becomes one GEMM:
//
//     y[n] (C_out, OH*OW)  =  w (C_out, K)  x  col (K, OH*OW)
//
// Column layout used by both kernels (b = image inside the current chunk):
//
//     col[b][k][l]      k = (c*KH + i)*KW + j      (channel, kernel row, kernel col)
//                       l = (oh - oh0)*OW + ow     (output pixel inside the chunk)
//
// The host may process only `nb` images starting at image n0 and only `ohn`
// output rows starting at row oh0, so the column buffer stays small for large
// images.  Then col has nb * K * (ohn*OW) entries.
//
// Where does kernel tap (i, j) of output pixel (oh, ow) read?  (PyTorch rules)
//
//     h = oh*SH - PH + i*DH          w = ow*SW - PW + j*DW
//
// and it reads 0 when (h, w) falls in the padding (outside 0..H-1, 0..W-1).
//
// Thread mapping: both kernels use a 1-D grid and a "grid-stride loop": thread
// t handles items t, t + (all threads), t + 2*(all threads), ... so any grid
// size gives the right answer (the host picks one that fits the device).
//   im2col: one item = one entry of col      (reads x, writes col)
//   col2im: one item = one pixel of x        (reads col, adds into x)

extern "C" __global__ void im2col(const float* x, float* col,
                                  int n0, int nb, int C, int H, int W,
                                  int KH, int KW, int SH, int SW,
                                  int PH, int PW, int DH, int DW,
                                  int OH, int OW, int oh0, int ohn)
{
    const int L = ohn * OW;              // columns per image in this chunk
    const int K = C * KH * KW;           // rows of col
    const int total = nb * K * L;
    const int nthreads = gridDim.x * blockDim.x;

    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += nthreads) {
        // Split the flat index t into (b, c, i, j, oh, ow), last index fastest.
        int l = t % L;
        int k = (t / L) % K;
        int b = t / (L * K);
        int ow = l % OW;
        int oh = oh0 + l / OW;           // absolute output row
        int j = k % KW;
        int i = (k / KW) % KH;
        int c = k / (KW * KH);

        // The input pixel that kernel tap (i, j) of output (oh, ow) looks at.
        int h = oh * SH - PH + i * DH;
        int w = ow * SW - PW + j * DW;

        float v = 0.0f;                  // padding reads as zero
        if (h >= 0 && h < H && w >= 0 && w < W) {
            int n = n0 + b;
            v = x[((n * C + c) * H + h) * W + w];
        }
        col[t] = v;                      // t is exactly the col[b][k][l] offset
    }
}

// col2im: the adjoint of im2col.  Every entry of col came from one input pixel
// (or from padding), so the adjoint *sums* each column entry back into the
// pixel it came from.  Used for the input gradient of conv2d (= conv_transpose2d).
//
// Why gather, and no atomics?  The obvious way is "scatter": one thread per
// col entry doing x[pixel] += col[entry].  But one pixel is read by up to
// KH*KW windows, so many threads would add into the same x element at once
// and we would need atomicAdd (slow under contention, and float addition in
// a random order is not reproducible run to run).  Instead each thread OWNS
// one input pixel (h, w) and walks the kernel taps (i, j) that could have read
// it: output (oh, ow) read pixel (h, w) through tap (i, j) exactly when
//
//     oh*SH = h + PH - i*DH      and      ow*SW = w + PW - j*DW
//
// i.e. when the right-hand side is >= 0, divisible by the stride, and gives an
// output row inside this chunk (and a column < OW).  The owner thread adds up
// those few col entries and is the only writer of x[pixel]: no races, and the
// same order of additions every run.
//
// x is ACCUMULATED into (x += ...), because when the host splits the output
// rows into chunks, each chunk contributes part of the sum.  The host zeroes
// x once before the first chunk.
extern "C" __global__ void col2im(const float* col, float* x,
                                  int n0, int nb, int C, int H, int W,
                                  int KH, int KW, int SH, int SW,
                                  int PH, int PW, int DH, int DW,
                                  int OH, int OW, int oh0, int ohn)
{
    const int L = ohn * OW;
    const int K = C * KH * KW;
    const int total = nb * C * H * W;    // pixels of the nb images
    const int nthreads = gridDim.x * blockDim.x;

    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += nthreads) {
        int w = t % W;
        int h = (t / W) % H;
        int c = (t / (W * H)) % C;
        int b = t / (W * H * C);

        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            int hs = h + PH - i * DH;            // = oh*SH if tap i hits this row
            if (hs < 0 || hs % SH != 0) continue;
            int oh = hs / SH;
            if (oh < oh0 || oh >= oh0 + ohn) continue;   // not in this chunk
            for (int j = 0; j < KW; ++j) {
                int ws = w + PW - j * DW;        // = ow*SW if tap j hits this column
                if (ws < 0 || ws % SW != 0) continue;
                int ow = ws / SW;
                if (ow >= OW) continue;
                int k = (c * KH + i) * KW + j;
                int l = (oh - oh0) * OW + ow;
                sum += col[(b * K + k) * L + l];
            }
        }
        // This thread is the only one that touches this pixel.
        x[(((n0 + b) * C + c) * H + h) * W + w] += sum;
    }
}
