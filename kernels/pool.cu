// pool.cu -- max pooling (with switches), max unpooling, average pooling,
// and their gradients.  NCHW float32; every (n, c) pair is an independent
// "plane" of H x W pixels.
//
// Window geometry (PyTorch, floor mode): output pixel (oh, ow) looks at the
// KH x KW input pixels
//
//     h = oh*SH - PH + i,   w = ow*SW - PW + j,     0 <= i < KH, 0 <= j < KW
//
// and OH = (H + 2*PH - KH)/SH + 1 (likewise OW).  Pixels with h or w outside
// the image are padding: -infinity for max pooling (they never win), zero for
// average pooling (they count in the divisor: count_include_pad=True).
//
// "Switches" (max-pool indices) are int64 (`long long`) and, as in PyTorch,
// point into the flattened *unpadded* input plane: idx = h*W + w.
//
// Thread mapping, every kernel: 1-D grid-stride loop (see im2col.cu).
//   forward kernels          : one item = one OUTPUT pixel, reading its window
//   backward kernels (gather): one item = one INPUT pixel, summing the outputs
//                              that used it
// Gradients are computed in gather form so that each gx element has exactly
// one writer: no atomicAdd, no races, and the same result on every run.
//
// Which outputs have input row h in their window?  Those oh with
//     oh*SH - PH <= h <= oh*SH - PH + KH - 1
// i.e.  (h + PH - KH + 1)/SH <= oh <= (h + PH)/SH   (rounded inwards),
// clipped to 0..OH-1.  window_range() below computes that range.

// First and one-past-last output index whose window contains input index h.
__device__ void window_range(int h, int K, int S, int P, int O, int* lo, int* hi)
{
    int top = h + P - K + 1;                       // oh*S must be >= top
    int first = top <= 0 ? 0 : (top + S - 1) / S;  // ceil(top / S), top > 0
    int last = (h + P) / S;                        // floor; h + P >= 0 always
    *lo = first;
    *hi = last + 1 < O ? last + 1 : O;             // clip to 0..O-1
}

// ---------------------------------------------------------------- max pooling

extern "C" __global__ void max_pool2d_forward(const float* x, float* y, long long* idx,
                                              int NC, int H, int W, int OH, int OW,
                                              int KH, int KW, int SH, int SW,
                                              int PH, int PW)
{
    const int total = NC * OH * OW;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += gridDim.x * blockDim.x) {
        int ow = t % OW;
        int oh = (t / OW) % OH;
        int p = t / (OW * OH);                     // plane = n*C + c
        const float* plane = x + p * H * W;

        int h0 = oh * SH - PH, w0 = ow * SW - PW;  // window corner (may be < 0)
        // Padding is -infinity, so it can never be the maximum: we simply skip
        // it and let the first real pixel of the window start the search.
        // (No `-INFINITY` constant needed -- NVRTC, which CuPy uses, has no
        // <math.h> to define it.)
        float best = 0.0f;                         // set by the first real pixel
        long long best_i = -1;                     // -1: no real pixel seen yet
        // Row-major window order and a strict '>' keep the FIRST maximum.  A NaN
        // beats any number (v != v only for NaN), so it shows up, as in PyTorch.
        for (int i = 0; i < KH; ++i) {
            int h = h0 + i;
            if (h < 0 || h >= H) continue;         // padding row: -inf, skip
            for (int j = 0; j < KW; ++j) {
                int w = w0 + j;
                if (w < 0 || w >= W) continue;     // padding column
                float v = plane[h * W + w];
                if (best_i < 0 || v > best || (v != v && best == best)) {  // first pixel always
                    best = v;
                    best_i = (long long)h * W + w;
                }
            }
        }
        y[t] = best;
        idx[t] = best_i;
    }
}

// Gather form of the max-pool gradient: input pixel (h, w) collects gy of every
// window that contains it AND whose switch is (h, w).  Overlapping windows
// (stride < kernel) can share a switch; then their gradients add up.
extern "C" __global__ void max_pool2d_backward(const float* gy, const long long* idx, float* gx,
                                               int NC, int H, int W, int OH, int OW,
                                               int KH, int KW, int SH, int SW,
                                               int PH, int PW)
{
    const int total = NC * H * W;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += gridDim.x * blockDim.x) {
        int w = t % W;
        int h = (t / W) % H;
        int p = t / (W * H);
        long long me = (long long)h * W + w;       // my switch value

        int oh_lo, oh_hi, ow_lo, ow_hi;
        window_range(h, KH, SH, PH, OH, &oh_lo, &oh_hi);
        window_range(w, KW, SW, PW, OW, &ow_lo, &ow_hi);

        float sum = 0.0f;
        for (int oh = oh_lo; oh < oh_hi; ++oh)
            for (int ow = ow_lo; ow < ow_hi; ++ow) {
                int o = (p * OH + oh) * OW + ow;
                if (idx[o] == me) sum += gy[o];
            }
        gx[t] = sum;
    }
}

// -------------------------------------------------------------- max unpooling

// y (zeroed by the host, planes of OHW pixels) gets each x at its switch.
// One item = one INPUT element x[p][i]; it writes y[p][idx[p][i]].  This is a
// scatter, but a plain write, not an add: if two inputs share a switch, one of
// them wins (which one is unspecified, as in PyTorch).  Switches outside the
// plane are ignored.
extern "C" __global__ void max_unpool2d_forward(const float* x, const long long* idx, float* y,
                                                int NC, int HW, int OHW)
{
    const int total = NC * HW;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += gridDim.x * blockDim.x) {
        int p = t / HW;
        long long s = idx[t];
        if (s >= 0 && s < OHW) y[(long long)p * OHW + s] = x[t];
    }
}

// Adjoint of the write above: gx[p][i] = gy[p][idx[p][i]] -- a pure gather,
// one item = one element of gx.
extern "C" __global__ void max_unpool2d_backward(const float* gy, const long long* idx, float* gx,
                                                 int NC, int HW, int OHW)
{
    const int total = NC * HW;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += gridDim.x * blockDim.x) {
        int p = t / HW;
        long long s = idx[t];
        gx[t] = (s >= 0 && s < OHW) ? gy[(long long)p * OHW + s] : 0.0f;
    }
}

// ------------------------------------------------------------ average pooling

// Mean of the window; padding adds zeros but still counts: divide by KH*KW.
// (In floor mode a window never reaches past the padding, so the divisor is
// always KH*KW, exactly PyTorch's count_include_pad=True.)
extern "C" __global__ void avg_pool2d_forward(const float* x, float* y,
                                              int NC, int H, int W, int OH, int OW,
                                              int KH, int KW, int SH, int SW,
                                              int PH, int PW)
{
    const int total = NC * OH * OW;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += gridDim.x * blockDim.x) {
        int ow = t % OW;
        int oh = (t / OW) % OH;
        int p = t / (OW * OH);
        const float* plane = x + p * H * W;

        int h0 = oh * SH - PH, w0 = ow * SW - PW;
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            int h = h0 + i;
            if (h < 0 || h >= H) continue;         // padding: adds 0
            for (int j = 0; j < KW; ++j) {
                int w = w0 + j;
                if (w >= 0 && w < W) sum += plane[h * W + w];
            }
        }
        y[t] = sum / (float)(KH * KW);
    }
}

// Gather form: input pixel (h, w) gets gy/(KH*KW) from every window containing it.
extern "C" __global__ void avg_pool2d_backward(const float* gy, float* gx,
                                               int NC, int H, int W, int OH, int OW,
                                               int KH, int KW, int SH, int SW,
                                               int PH, int PW)
{
    const int total = NC * H * W;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += gridDim.x * blockDim.x) {
        int w = t % W;
        int h = (t / W) % H;
        int p = t / (W * H);

        int oh_lo, oh_hi, ow_lo, ow_hi;
        window_range(h, KH, SH, PH, OH, &oh_lo, &oh_hi);
        window_range(w, KW, SW, PW, OW, &ow_lo, &ow_hi);

        float sum = 0.0f;
        for (int oh = oh_lo; oh < oh_hi; ++oh)
            for (int ow = ow_lo; ow < ow_hi; ++ow)
                sum += gy[(p * OH + oh) * OW + ow];
        gx[t] = sum / (float)(KH * KW);
    }
}
