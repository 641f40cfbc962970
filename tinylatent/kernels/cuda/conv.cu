// Convolution data movement on the GPU: im2col / col2im. The contractions are cuBLAS GEMMs
// (cupy.matmul); y[b] = W' cols[:, b] reads cols as strided matrices and comes out NCHW.
//   cols[(c, i, j), (b, oh, ow)] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (0 outside)
// plus, for a bias, a last row of ones (the bias is the last column of W').
// col2im is written as a gather (each input pixel sums the taps that read it), so it needs
// no atomics and is deterministic. float16 and bfloat16 (tl_half, tl_bf16): im2col only
// moves values; col2im sums the taps in float and rounds once; the GEMMs are cuBLAS's (float
// accumulation).
#include "common.cuh"

// Indexing: 32-bit divisions only, once per thread and column (64-bit division is a long
// software routine on the GPU); the Python side checks that B*Ho*Wo and H*W fit in an int.
// im2col: blockIdx.y walks the input channels, x-threads the columns (b, oh, ow), and each
// thread writes its column's kh*kw taps of each channel: for one tap, consecutive threads
// write consecutive columns and read consecutive ow (both coalesced).
template <typename T>
__device__ void im2col_impl(const T* x, T* cols, int B, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo,
                            int bias_row) {
    const int L = Ho * Wo, N = B * L;
    for (int col = blockIdx.x * blockDim.x + threadIdx.x; col < N;
         col += blockDim.x * gridDim.x) {
        const int b = col / L, l = col - b * L;
        const int oh = l / Wo, ow = l - oh * Wo;
        for (int c = blockIdx.y; c < C; c += gridDim.y) {
            const T* plane = x + ((long long)b * C + c) * H * W;
            T* out = cols + (long long)(c * kh * kw) * N + col;     // row (c, 0, 0)
            for (int i = 0; i < kh; ++i) {
                const int ih = oh * sh - ph + i * dh;
                for (int j = 0; j < kw; ++j, out += N) {
                    const int iw = ow * sw - pw + j * dw;
                    *out = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? plane[ih * W + iw]
                                                                     : tl_st<T>(0.0f);
                }
            }
        }
        if (bias_row && blockIdx.y == 0)   // the row of ones that multiplies W's bias column
            cols[(long long)C * kh * kw * N + col] = tl_st<T>(1.0f);
    }
}

// col2im as a gather: blockIdx.y walks the (b, c) planes, x-threads the pixels of a plane;
// each pixel sums the cols entries of the taps that read it (no atomics: deterministic).
template <typename T>
__device__ void col2im_impl(const T* cols, T* x, int B, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {
    typedef typename tl_compute<T>::type Acc;
    const int L = Ho * Wo, N = B * L, HW = H * W;
    for (int bc = blockIdx.y; bc < B * C; bc += gridDim.y) {
        const int b = bc / C, c = bc - b * C;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < HW;
             p += blockDim.x * gridDim.x) {
            const int ih = p / W, iw = p - ih * W;
            Acc acc = 0;
            for (int i = 0; i < kh; ++i) {
                const int th = ih + ph - i * dh;
                if (th < 0 || th % sh) continue;
                const int oh = th / sh;
                if (oh >= Ho) continue;
                for (int j = 0; j < kw; ++j) {
                    const int tw = iw + pw - j * dw;
                    if (tw < 0 || tw % sw) continue;
                    const int ow = tw / sw;
                    if (ow >= Wo) continue;
                    acc += tl_ld<Acc>(
                        cols[(long long)((c * kh + i) * kw + j) * N + b * L + oh * Wo + ow]);
                }
            }
            x[(long long)bc * HW + p] = tl_st<T>(acc);
        }
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
TL_CONV_KERNELS(tl_half, f16)
TL_CONV_KERNELS(tl_bf16, bf16)
