// Affine coupling (RealNVP / Glow) on the GPU, rows (B, K):
//   forward:  y = x exp(log_s) + t,  ld_b = sum_k log_s   (inverse: x = (y - t) exp(-log_s),
//             ld_b = -sum_k log_s);  one block per sample row
//   backward (elementwise, from the forward's output `out`; the logabsdet's gradient is
//   added to glog_s by the autograd engine):
//     forward:  gx = g exp(log_s),  glog_s = g (y - t),  gt = g
//     inverse:  gy = g exp(-log_s), glog_s = -g x,       gt = -g exp(-log_s)
// float16 and bfloat16 (tl_half, tl_bf16): exp and the logabsdet sum in float, each output
// rounded once.
#include "common.cuh"

template <typename T>
__device__ void coupling_forward_impl(const T* x, const T* ls, const T* t, int inverse, T* out,
                                      T* ld, int K) {
    typedef typename tl_compute<T>::type A;
    __shared__ A buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)K;
    A acc = 0;
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) {
        const A l = tl_ld<A>(ls[off + j]), xj = tl_ld<A>(x[off + j]), tj = tl_ld<A>(t[off + j]);
        acc += l;
        out[off + j] = tl_st<T>(inverse ? (xj - tj) * tl_exp(-l) : xj * tl_exp(l) + tj);
    }
    acc = tl_block_sum(acc, buf);
    if (threadIdx.x == 0) ld[blockIdx.x] = tl_st<T>(inverse ? -acc : acc);
}

template <typename T>
__device__ void coupling_backward_impl(const T* g, const T* out, const T* ls, const T* t,
                                       int inverse, T* g_in, T* g_ls, T* g_t, long long n) {
    typedef typename tl_compute<T>::type A;
    TL_GRID_STRIDE(idx, n) {
        const A gj = tl_ld<A>(g[idx]);
        if (inverse) {
            const A r = tl_exp(-tl_ld<A>(ls[idx]));
            g_in[idx] = tl_st<T>(gj * r);
            g_t[idx] = tl_st<T>(-gj * r);
            g_ls[idx] = tl_st<T>(-gj * tl_ld<A>(out[idx]));
        } else {
            g_in[idx] = tl_st<T>(gj * tl_exp(tl_ld<A>(ls[idx])));
            g_t[idx] = g[idx];
            g_ls[idx] = tl_st<T>(gj * (tl_ld<A>(out[idx]) - tl_ld<A>(t[idx])));
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
TL_COUPLING_KERNELS(tl_half, f16)
TL_COUPLING_KERNELS(tl_bf16, bf16)
