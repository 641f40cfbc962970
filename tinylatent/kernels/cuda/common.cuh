// Shared helpers for tinylatent's CUDA kernels (compiled by NVRTC through CuPy's RawModule,
// and by `nvcc -ptx` in the tests). Every kernel is a template instantiated for float and
// double under extern "C" names with a _f32 / _f64 suffix.
#pragma once

// Threads per block of every kernel (a power of two): defined once, in kernels/cuda
// (BLOCK), and passed as -DTL_BLOCK, so the launches and the shared buffers always agree.
#ifndef TL_BLOCK
#error "TL_BLOCK is not defined: compile with -DTL_BLOCK=<kernels.cuda.BLOCK>"
#endif
static_assert(TL_BLOCK >= 32 && TL_BLOCK <= 1024 && (TL_BLOCK & (TL_BLOCK - 1)) == 0,
              "TL_BLOCK must be a power of two in [32, 1024]");

template <typename T> __device__ __forceinline__ T tl_inf();
template <> __device__ __forceinline__ float tl_inf<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double tl_inf<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}
__device__ __forceinline__ float tl_exp(float x) { return expf(x); }
__device__ __forceinline__ double tl_exp(double x) { return exp(x); }
__device__ __forceinline__ float tl_log(float x) { return logf(x); }
__device__ __forceinline__ double tl_log(double x) { return log(x); }
__device__ __forceinline__ float tl_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double tl_sqrt(double x) { return sqrt(x); }

// max that propagates NaN, as NumPy's maximum does: CUDA's fmax returns the non-NaN
// operand, which would hide a NaN score (a diverging run) on the GPU only.
template <typename T> __device__ __forceinline__ T tl_max(T a, T b) {
    return (a > b || a != a) ? a : b;
}

// exp(d) below this is a denormal (or 0) in T: flushed to exactly 0.
template <typename T> __device__ __forceinline__ T tl_cutoff();
template <> __device__ __forceinline__ float tl_cutoff<float>() { return -87.0f; }
template <> __device__ __forceinline__ double tl_cutoff<double>() { return -708.0; }

// exp(d) when it is not flushed: `d > cutoff` would be false for a NaN d and drop it.
template <typename T> __device__ __forceinline__ bool tl_keep(T d) {
    return !(d <= tl_cutoff<T>());
}

// Block-wide sum / max over TL_BLOCK threads through a shared buffer; every thread gets it.
template <typename T> __device__ T tl_block_sum(T v, T* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = TL_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    T r = buf[0];
    __syncthreads();
    return r;
}

template <typename T> __device__ T tl_block_max(T v, T* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = TL_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] = tl_max(buf[threadIdx.x], buf[threadIdx.x + s]);
        __syncthreads();
    }
    T r = buf[0];
    __syncthreads();
    return r;
}

#define TL_GRID_STRIDE(idx, total)                                                     \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < (total); \
         idx += (long long)blockDim.x * gridDim.x)
