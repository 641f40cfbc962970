// The backward of an embedding lookup on the GPU: gW[idx[n]] += gy[n] (a scatter-add); the
// twin of kernels/numba/embedding.py. Rows whose index is padding_idx (-1: none) add
// nothing. gW must be zeroed first. Repeated indices make the
// additions race, so they are atomic (float order then varies: sums agree to rounding).
#include "common.cuh"

__device__ __forceinline__ void tl_atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void tl_atomic_add(double* p, double v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 600
    // no native double atomicAdd before sm_60: the compare-and-swap loop of the CUDA guide
    unsigned long long* a = (unsigned long long*)p;
    unsigned long long old = *a, assumed;
    do {
        assumed = old;
        old = atomicCAS(a, assumed,
                        __double_as_longlong(v + __longlong_as_double(assumed)));
    } while (assumed != old);
#else
    atomicAdd(p, v);
#endif
}

// One block per looked-up row n (a grid-stride loop over rows), its threads along the D
// features: coalesced, and no 64-bit division per element. float16 and bfloat16 gradients
// (tl_half, tl_bf16) are summed into a float gW (A), which the caller rounds once.
template <typename T, typename A>
__device__ void embedding_backward_impl(const long long* idx, const T* gy, long long padding_idx,
                                        A* gw, long long N, int D, long long V) {
    for (long long n = blockIdx.x; n < N; n += gridDim.x) {
        long long v = idx[n];
        if (v < 0) v += V;
        if (v == padding_idx) continue;
        for (int j = threadIdx.x; j < D; j += TL_BLOCK)
            tl_atomic_add(gw + v * D + j, tl_ld<A>(gy[n * D + j]));
    }
}

#define TL_EMBEDDING_KERNELS(T, A, SFX)                                                       \
    extern "C" __global__ void embedding_backward_##SFX(const long long* idx, const T* gy,    \
        long long padding_idx, A* gw, long long N, int D, long long V) {                      \
        embedding_backward_impl<T, A>(idx, gy, padding_idx, gw, N, D, V);                     \
    }

TL_EMBEDDING_KERNELS(float, float, f32)
TL_EMBEDDING_KERNELS(double, double, f64)
TL_EMBEDDING_KERNELS(tl_half, float, f16)
TL_EMBEDDING_KERNELS(tl_bf16, float, bf16)
