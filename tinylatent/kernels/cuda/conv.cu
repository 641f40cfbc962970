// Convolution data movement on the GPU: im2col / col2im. The contractions are cuBLAS GEMMs
// (cupy.matmul); y[b] = W' cols[:, b] reads cols as strided matrices and comes out NCHW.
//   cols[(c, i, j), (b, oh, ow)] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (0 outside)
// plus, for a bias, a last row of ones (the bias is the last column of W').
// col2im is written as a gather (each input pixel sums the taps that read it), so it needs
// no atomics and is deterministic.
#include "common.cuh"

template <typename T>
__device__ void im2col_impl(const T* x, T* cols, int B, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo,
                            int bias_row) {
    const int K = C * kh * kw;
    const long long L = (long long)Ho * Wo, N = (long long)B * L;
    const long long total = (long long)(K + bias_row) * N;
    TL_GRID_STRIDE(idx, total) {  // cols is (K [+1], B*L): consecutive threads, consecutive ow
        long long col = idx % N;
        int k = (int)(idx / N);
        if (k == K) {  // the row of ones that multiplies the bias column of W'
            cols[idx] = T(1);
            continue;
        }
        int b = (int)(col / L);
        long long l = col % L;
        int ow = (int)(l % Wo), oh = (int)(l / Wo);
        int j = k % kw, i = (k / kw) % kh, c = k / (kw * kh);
        int ih = oh * sh - ph + i * dh, iw = ow * sw - pw + j * dw;
        cols[idx] = (ih >= 0 && ih < H && iw >= 0 && iw < W)
                        ? x[(((long long)b * C + c) * H + ih) * W + iw] : T(0);
    }
}

template <typename T>
__device__ void col2im_impl(const T* cols, T* x, int B, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {
    const long long L = (long long)Ho * Wo, N = (long long)B * L;
    const long long total = (long long)B * C * H * W;
    TL_GRID_STRIDE(idx, total) {
        int iw = (int)(idx % W), ih = (int)((idx / W) % H);
        int c = (int)((idx / ((long long)W * H)) % C), b = (int)(idx / ((long long)W * H * C));
        T acc = 0;
        for (int i = 0; i < kh; ++i) {
            int th = ih + ph - i * dh;
            if (th < 0 || th % sh) continue;
            int oh = th / sh;
            if (oh >= Ho) continue;
            for (int j = 0; j < kw; ++j) {
                int tw = iw + pw - j * dw;
                if (tw < 0 || tw % sw) continue;
                int ow = tw / sw;
                if (ow >= Wo) continue;
                acc += cols[(long long)((c * kh + i) * kw + j) * N + b * L + oh * Wo + ow];
            }
        }
        x[idx] = acc;
    }
}

#define TL_CONV_KERNELS(T, SFX)                                                              \
    extern "C" __global__ void im2col_##SFX(const T* x, T* cols, int B, int C, int H, int W, \
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo,      \
        int bias_row) {                                                                      \
        im2col_impl<T>(x, cols, B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, bias_row);\
    }                                                                                        \
    extern "C" __global__ void col2im_##SFX(const T* cols, T* x, int B, int C, int H, int W, \
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {    \
        col2im_impl<T>(cols, x, B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);         \
    }

TL_CONV_KERNELS(float, f32)
TL_CONV_KERNELS(double, f64)
