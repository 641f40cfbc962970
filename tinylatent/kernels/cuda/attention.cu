// Fused attention row kernels (the batched products are cuBLAS GEMMs, cupy.matmul).
//   forward:  P_ij = exp(scale s_ij - m_i) / sum_j' exp(scale s_ij' - m_i) over kept j, else 0
//   backward: dS_ij = scale P_ij (dP_ij - sum_j' dP_ij' P_ij')
// One block per row of the (N*Tq, Tk) score matrix, in place.
// The scaled scores are recomputed from s in each pass rather than stored back, so float16
// and bfloat16 (tl_half, tl_bf16) rows round only the weights e_ij and P_ij; max, sum and
// dot products in float.
#include "common.cuh"

template <typename T, typename A>
__device__ void masked_softmax_impl(T* s, A scale, const unsigned char* keep, int has_keep,
                                    int causal, int Tq, int Tk) {
    __shared__ A buf[TL_BLOCK];
    const long long row = blockIdx.x;
    const int i = (int)(row % Tq);
    T* r = s + row * Tk;
    const unsigned char* kr = has_keep ? keep + row * Tk : nullptr;
    A m = -tl_inf<A>();
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) {
        const bool ok = (!causal || j <= i) && (!has_keep || kr[j]);
        m = tl_max(m, ok ? tl_ld<A>(r[j]) * scale : -tl_inf<A>());
    }
    m = tl_block_max(m, buf);
    if (m == -tl_inf<A>()) {  // no key kept: the row's weights are all zero
        for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) r[j] = tl_st<T>(A(0));
        return;
    }
    A tot = 0;
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) {
        const bool ok = (!causal || j <= i) && (!has_keep || kr[j]);
        const A d = ok ? tl_ld<A>(r[j]) * scale - m : -tl_inf<A>();
        const A e = tl_keep(d) ? tl_exp(d) : A(0);
        r[j] = tl_st<T>(e);
        tot += e;
    }
    tot = tl_block_sum(tot, buf);
    const A inv = A(1) / tot;
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) r[j] = tl_st<T>(tl_ld<A>(r[j]) * inv);
}

template <typename T, typename A>
__device__ void softmax_backward_impl(const T* p, T* dp, A scale, int Tk) {
    __shared__ A buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)Tk;
    A dot = 0;
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK)
        dot += tl_ld<A>(dp[off + j]) * tl_ld<A>(p[off + j]);
    dot = tl_block_sum(dot, buf);
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK)
        dp[off + j] = tl_st<T>(scale * tl_ld<A>(p[off + j]) * (tl_ld<A>(dp[off + j]) - dot));
}

#define TL_ATTENTION_KERNELS(T, A, SFX)                                                      \
    extern "C" __global__ void masked_softmax_##SFX(T* s, A scale, const unsigned char* keep,\
                                                    int has_keep, int causal, int Tq, int Tk) {\
        masked_softmax_impl<T, A>(s, scale, keep, has_keep, causal, Tq, Tk);                 \
    }                                                                                        \
    extern "C" __global__ void softmax_backward_##SFX(const T* p, T* dp, A scale, int Tk) {  \
        softmax_backward_impl<T, A>(p, dp, scale, Tk);                                       \
    }

TL_ATTENTION_KERNELS(float, float, f32)
TL_ATTENTION_KERNELS(double, double, f64)
TL_ATTENTION_KERNELS(tl_half, float, f16)
TL_ATTENTION_KERNELS(tl_bf16, float, bf16)
