// Convolution data movement on the GPU: im2col / col2im and the NCHW <-> row layouts.
// The contractions are cuBLAS GEMMs (cupy.matmul); these kernels only gather and scatter.
//   cols[(b, oh, ow), (c, i, j)] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (0 outside)
// col2im is written as a gather (each input pixel sums the taps that read it), so it needs
// no atomics and is deterministic.
#include "common.cuh"

template <typename T>
__device__ void im2col_impl(const T* x, T* cols, int B, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {
    const int K = C * kh * kw;
    const long long total = (long long)B * Ho * Wo * K;
    TL_GRID_STRIDE(idx, total) {
        int k = (int)(idx % K);
        long long r = idx / K;
        int ow = (int)(r % Wo), oh = (int)((r / Wo) % Ho), b = (int)(r / ((long long)Wo * Ho));
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
                acc += cols[(((long long)b * Ho + oh) * Wo + ow) * K + (c * kh + i) * kw + j];
            }
        }
        x[idx] = acc;
    }
}

template <typename T>
__device__ void rows_to_nchw_impl(const T* rows, const T* bias, int has_bias, T* y, int B,
                                  int O, int L) {
    const long long total = (long long)B * O * L;
    TL_GRID_STRIDE(idx, total) {
        int l = (int)(idx % L), o = (int)((idx / L) % O), b = (int)(idx / ((long long)L * O));
        y[idx] = rows[((long long)b * L + l) * O + o] + (has_bias ? bias[o] : T(0));
    }
}

template <typename T>
__device__ void nchw_to_rows_impl(const T* y, T* rows, int B, int O, int L) {
    const long long total = (long long)B * O * L;
    TL_GRID_STRIDE(idx, total) {
        int l = (int)(idx % L), o = (int)((idx / L) % O), b = (int)(idx / ((long long)L * O));
        rows[((long long)b * L + l) * O + o] = y[idx];
    }
}

// One block per channel o: out[o] = sum_{b, l} y[b, o, l].
template <typename T>
__device__ void channel_sum_impl(const T* y, T* out, int B, int O, int L) {
    __shared__ T buf[TL_BLOCK];
    const int o = blockIdx.x;
    T acc = 0;
    for (long long t = threadIdx.x; t < (long long)B * L; t += TL_BLOCK) {
        long long b = t / L, l = t % L;
        acc += y[(b * O + o) * L + l];
    }
    acc = tl_block_sum(acc, buf);
    if (threadIdx.x == 0) out[o] = acc;
}

#define TL_CONV_KERNELS(T, SFX)                                                              \
    extern "C" __global__ void im2col_##SFX(const T* x, T* cols, int B, int C, int H, int W, \
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {    \
        im2col_impl<T>(x, cols, B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);         \
    }                                                                                        \
    extern "C" __global__ void col2im_##SFX(const T* cols, T* x, int B, int C, int H, int W, \
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {    \
        col2im_impl<T>(cols, x, B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);         \
    }                                                                                        \
    extern "C" __global__ void rows_to_nchw_##SFX(const T* rows, const T* bias, int has_bias,\
                                                  T* y, int B, int O, int L) {              \
        rows_to_nchw_impl<T>(rows, bias, has_bias, y, B, O, L);                              \
    }                                                                                        \
    extern "C" __global__ void nchw_to_rows_##SFX(const T* y, T* rows, int B, int O, int L) {\
        nchw_to_rows_impl<T>(y, rows, B, O, L);                                              \
    }                                                                                        \
    extern "C" __global__ void channel_sum_##SFX(const T* y, T* out, int B, int O, int L) {  \
        channel_sum_impl<T>(y, out, B, O, L);                                                \
    }

TL_CONV_KERNELS(float, f32)
TL_CONV_KERNELS(double, f64)
