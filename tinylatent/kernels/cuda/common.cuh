// Shared helpers for tinylatent's CUDA kernels (compiled by NVRTC through CuPy's RawModule,
// and by `nvcc -ptx` in the tests). Every kernel is a template instantiated for float and
// double under extern "C" names with a _f32 / _f64 suffix.
#pragma once

#define TL_BLOCK 256  // threads per block of every row-wise kernel (a power of two)

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

// exp(d) below this is a denormal (or 0) in T: flushed to exactly 0.
template <typename T> __device__ __forceinline__ T tl_cutoff();
template <> __device__ __forceinline__ float tl_cutoff<float>() { return -87.0f; }
template <> __device__ __forceinline__ double tl_cutoff<double>() { return -708.0; }

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
        if (threadIdx.x < s) buf[threadIdx.x] = fmax(buf[threadIdx.x], buf[threadIdx.x + s]);
        __syncthreads();
    }
    T r = buf[0];
    __syncthreads();
    return r;
}

#define TL_GRID_STRIDE(idx, total)                                                     \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < (total); \
         idx += (long long)blockDim.x * gridDim.x)
