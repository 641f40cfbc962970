// The exact GELU on the GPU (Hendrycks & Gimpel 2016), value and derivative in one pass; the
// twin of kernels/numba/activation.py:
//   y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2,  dy/dx = Phi(x) + x exp(-x^2/2) / sqrt(2 pi)
// The backward is one multiply by dy/dx (done by the caller). CUDA's erff / erf are accurate to
// a few ulp, so no approximation is needed here. A grid-stride loop, one element per thread.
// float16 and bfloat16 (tl_half, tl_bf16) load to float, compute y and dy/dx in float and
// round each once.
#include "common.cuh"

__device__ __forceinline__ float tl_erf(float x) { return erff(x); }
__device__ __forceinline__ double tl_erf(double x) { return erf(x); }

template <typename T>
__device__ void gelu_forward_impl(const T* x, T* y, T* d, long long n) {
    typedef typename tl_compute<T>::type C;
    const C inv_sqrt2 = (C)0.70710678118654752440, inv_sqrt2pi = (C)0.39894228040143267794;
    TL_GRID_STRIDE(i, n) {
        const C v = tl_ld<C>(x[i]);
        const C cdf = (C)0.5 * ((C)1 + tl_erf(v * inv_sqrt2));
        y[i] = tl_st<T>(v * cdf);
        d[i] = tl_st<T>(cdf + v * inv_sqrt2pi * tl_exp((C)-0.5 * v * v));
    }
}

#define TL_ACTIVATION_KERNELS(T, SFX)                                                          \
    extern "C" __global__ void gelu_forward_##SFX(const T* x, T* y, T* d, long long n) {       \
        gelu_forward_impl<T>(x, y, d, n);                                                      \
    }

TL_ACTIVATION_KERNELS(float, f32)
TL_ACTIVATION_KERNELS(double, f64)
TL_ACTIVATION_KERNELS(tl_half, f16)
TL_ACTIVATION_KERNELS(tl_bf16, bf16)
