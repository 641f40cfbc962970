// Layer normalization over the last axis on the GPU (Ba, Kiros & Hinton 2016, Sec. 3); the
// twin of kernels/numba/layernorm.py, same formulas:
//   mu_r = mean_j x_rj, rstd_r = 1/sqrt(var_r + eps), y_rj = (x_rj - mu_r) rstd_r w_j + b_j
//   gx_rj = rstd_r (gy_rj w_j - mean_j(gy w) - xhat_rj mean_j(gy w xhat))
//   gw_j = sum_r gy_rj xhat_rj,  gb_j = sum_r gy_rj   (a column kernel: no atomics)
// One block per row; mean and variance in one sweep of sums shifted by the row's first
// element (so a large common offset does not cancel), accumulated in double. float16
// and bfloat16 (tl_half, tl_bf16) compute each output in float from the double statistics
// and round it once.
#include "common.cuh"

template <typename T>
__device__ void layer_norm_forward_impl(const T* x, const T* w, const T* b, double eps, T* y,
                                        double* mu, double* rstd, int D) {
    __shared__ double buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)D;
    typedef typename tl_compute<T>::type C;
    const double shift = tl_ld<double>(x[off]);
    double s1 = 0, s2 = 0;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) {
        double t = tl_ld<double>(x[off + j]) - shift;
        s1 += t;
        s2 += t * t;
    }
    s1 = tl_block_sum(s1, buf);
    s2 = tl_block_sum(s2, buf);
    const double m1 = s1 / D;
    const double var = fmax(s2 / D - m1 * m1, 0.0);
    const double m = m1 + shift, rs = 1.0 / sqrt(var + eps);
    if (threadIdx.x == 0) {
        mu[blockIdx.x] = m;
        rstd[blockIdx.x] = rs;
    }
    const C mt = (C)m, rt = (C)rs;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK)
        y[off + j] = tl_st<T>((tl_ld<C>(x[off + j]) - mt) * rt * tl_ld<C>(w[j]) + tl_ld<C>(b[j]));
}

template <typename T>
__device__ void layer_norm_backward_impl(const T* gy, const T* x, const T* w, const double* mu,
                                         const double* rstd, T* gx, int D) {
    __shared__ double buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)D;
    typedef typename tl_compute<T>::type C;
    const C m = (C)mu[blockIdx.x], rs = (C)rstd[blockIdx.x];
    double a = 0, c = 0;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) {
        C gh = tl_ld<C>(gy[off + j]) * tl_ld<C>(w[j]);
        a += gh;
        c += gh * ((tl_ld<C>(x[off + j]) - m) * rs);
    }
    a = tl_block_sum(a, buf);
    c = tl_block_sum(c, buf);
    const C at = (C)(a / D), ct = (C)(c / D);
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) {
        C xhat = (tl_ld<C>(x[off + j]) - m) * rs;
        gx[off + j] = tl_st<T>(rs * (tl_ld<C>(gy[off + j]) * tl_ld<C>(w[j]) - at - xhat * ct));
    }
}

// One thread per column j: coalesced reads of row r across the threads of a warp.
template <typename T>
__device__ void layer_norm_param_grad_impl(const T* gy, const T* x, const double* mu,
                                           const double* rstd, T* gw, T* gb, int R, int D) {
    TL_GRID_STRIDE(j, (long long)D) {
        double sw = 0, sb = 0;
        for (int r = 0; r < R; ++r) {
            const long long k = r * (long long)D + j;
            const double g = tl_ld<double>(gy[k]);
            sw += g * ((tl_ld<double>(x[k]) - mu[r]) * rstd[r]);
            sb += g;
        }
        gw[j] = tl_st<T>(sw);
        gb[j] = tl_st<T>(sb);
    }
}

#define TL_LAYERNORM_KERNELS(T, SFX)                                                          \
    extern "C" __global__ void layer_norm_forward_##SFX(const T* x, const T* w, const T* b,   \
        double eps, T* y, double* mu, double* rstd, int D) {                                  \
        layer_norm_forward_impl<T>(x, w, b, eps, y, mu, rstd, D);                             \
    }                                                                                         \
    extern "C" __global__ void layer_norm_backward_##SFX(const T* gy, const T* x, const T* w, \
        const double* mu, const double* rstd, T* gx, int D) {                                 \
        layer_norm_backward_impl<T>(gy, x, w, mu, rstd, gx, D);                               \
    }                                                                                         \
    extern "C" __global__ void layer_norm_param_grad_##SFX(const T* gy, const T* x,           \
        const double* mu, const double* rstd, T* gw, T* gb, int R, int D) {                   \
        layer_norm_param_grad_impl<T>(gy, x, mu, rstd, gw, gb, R, D);                         \
    }

TL_LAYERNORM_KERNELS(float, f32)
TL_LAYERNORM_KERNELS(double, f64)
TL_LAYERNORM_KERNELS(tl_half, f16)
TL_LAYERNORM_KERNELS(tl_bf16, bf16)
