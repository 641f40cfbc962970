// Affine coupling (RealNVP / Glow) on the GPU, rows (B, K):
//   forward:  y = x exp(log_s) + t,  ld_b = sum_k log_s   (inverse: x = (y - t) exp(-log_s),
//             ld_b = -sum_k log_s);  one block per sample row
//   backward (elementwise, from the forward's output `out`; the logabsdet's gradient is
//   added to glog_s by the autograd engine):
//     forward:  gx = g exp(log_s),  glog_s = g (y - t),  gt = g
//     inverse:  gy = g exp(-log_s), glog_s = -g x,       gt = -g exp(-log_s)
#include "common.cuh"

template <typename T>
__device__ void coupling_forward_impl(const T* x, const T* ls, const T* t, int inverse, T* out,
                                      T* ld, int K) {
    __shared__ T buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)K;
    T acc = 0;
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) {
        T l = ls[off + j];
        acc += l;
        out[off + j] = inverse ? (x[off + j] - t[off + j]) * tl_exp(-l)
                               : x[off + j] * tl_exp(l) + t[off + j];
    }
    acc = tl_block_sum(acc, buf);
    if (threadIdx.x == 0) ld[blockIdx.x] = inverse ? -acc : acc;
}

template <typename T>
__device__ void coupling_backward_impl(const T* g, const T* out, const T* ls, const T* t,
                                       int inverse, T* g_in, T* g_ls, T* g_t, long long n) {
    TL_GRID_STRIDE(idx, n) {
        T gj = g[idx];
        if (inverse) {
            T r = tl_exp(-ls[idx]);
            g_in[idx] = gj * r;
            g_t[idx] = -gj * r;
            g_ls[idx] = -gj * out[idx];
        } else {
            g_in[idx] = gj * tl_exp(ls[idx]);
            g_t[idx] = gj;
            g_ls[idx] = gj * (out[idx] - t[idx]);
        }
    }
}

#define TL_COUPLING_KERNELS(T, SFX)                                                          \
    extern "C" __global__ void coupling_forward_##SFX(const T* x, const T* ls, const T* t,   \
                                                      int inverse, T* out, T* ld, int K) {   \
        coupling_forward_impl<T>(x, ls, t, inverse, out, ld, K);                             \
    }                                                                                        \
    extern "C" __global__ void coupling_backward_##SFX(const T* g, const T* out, const T* ls, \
        const T* t, int inverse, T* g_in, T* g_ls, T* g_t, long long n) {                    \
        coupling_backward_impl<T>(g, out, ls, t, inverse, g_in, g_ls, g_t, n);               \
    }

TL_COUPLING_KERNELS(float, f32)
TL_COUPLING_KERNELS(double, f64)
