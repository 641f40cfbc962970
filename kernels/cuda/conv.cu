// Convolution data movement on the GPU: im2col / col2im. The contractions are batched
// cuBLAS GEMMs (cupy.matmul), whose output y[b] = W cols[b] is already NCHW.
//   cols[b, (c, i, j), (oh, ow)] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (0 outside)
// col2im is written as a gather (each input pixel sums the taps that read it), so it needs
// no atomics and is deterministic.
#include "common.cuh"

template <typename T>
__device__ void im2col_impl(const T* x, T* cols, int B, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {
    const int K = C * kh * kw;
    const long long L = (long long)Ho * Wo;
    const long long total = (long long)B * K * L;
    TL_GRID_STRIDE(idx, total) {  // cols is (B, K, L): consecutive threads, consecutive ow
        long long l = idx % L;
        int k = (int)((idx / L) % K), b = (int)(idx / (L * K));
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
    const int K = C * kh * kw;
    const long long L = (long long)Ho * Wo;
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
                acc += cols[((long long)b * K + (c * kh + i) * kw + j) * L + oh * Wo + ow];
            }
        }
        x[idx] = acc;
    }
}

#define TL_CONV_KERNELS(T, SFX)                                                              \
    extern "C" __global__ void im2col_##SFX(const T* x, T* cols, int B, int C, int H, int W, \
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {    \
        im2col_impl<T>(x, cols, B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);         \
    }                                                                                        \
    extern "C" __global__ void col2im_##SFX(const T* cols, T* x, int B, int C, int H, int W, \
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {    \
        col2im_impl<T>(cols, x, B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);         \
    }

TL_CONV_KERNELS(float, f32)
TL_CONV_KERNELS(double, f64)
