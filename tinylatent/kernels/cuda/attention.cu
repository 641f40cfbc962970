// Fused attention row kernels (the batched products are cuBLAS GEMMs, cupy.matmul).
//   forward:  P_ij = exp(scale s_ij - m_i) / sum_j' exp(scale s_ij' - m_i) over kept j, else 0
//   backward: dS_ij = scale P_ij (dP_ij - sum_j' dP_ij' P_ij')
// One block per row of the (N*Tq, Tk) score matrix, in place.
#include "common.cuh"

template <typename T>
__device__ void masked_softmax_impl(T* s, T scale, const unsigned char* keep, int has_keep,
                                    int causal, int Tq, int Tk) {
    __shared__ T buf[TL_BLOCK];
    const long long row = blockIdx.x;
    const int i = (int)(row % Tq);
    T* r = s + row * Tk;
    const unsigned char* kr = has_keep ? keep + row * Tk : nullptr;
    T m = -tl_inf<T>();
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) {
        bool ok = (!causal || j <= i) && (!has_keep || kr[j]);
        T v = ok ? r[j] * scale : -tl_inf<T>();
        r[j] = v;
        m = tl_max(m, v);
    }
    m = tl_block_max(m, buf);
    if (m == -tl_inf<T>()) {  // no key kept: the row's weights are all zero
        for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) r[j] = T(0);
        return;
    }
    T tot = 0;
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) {
        T d = r[j] - m;
        T e = tl_keep(d) ? tl_exp(d) : T(0);
        r[j] = e;
        tot += e;
    }
    tot = tl_block_sum(tot, buf);
    T inv = T(1) / tot;
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) r[j] *= inv;
}

template <typename T>
__device__ void softmax_backward_impl(const T* p, T* dp, T scale, int Tk) {
    __shared__ T buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)Tk;
    T dot = 0;
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK) dot += dp[off + j] * p[off + j];
    dot = tl_block_sum(dot, buf);
    for (int j = threadIdx.x; j < Tk; j += TL_BLOCK)
        dp[off + j] = scale * p[off + j] * (dp[off + j] - dot);
}

#define TL_ATTENTION_KERNELS(T, SFX)                                                         \
    extern "C" __global__ void masked_softmax_##SFX(T* s, T scale, const unsigned char* keep,\
                                                    int has_keep, int causal, int Tq, int Tk) {\
        masked_softmax_impl<T>(s, scale, keep, has_keep, causal, Tq, Tk);                    \
    }                                                                                        \
    extern "C" __global__ void softmax_backward_##SFX(const T* p, T* dp, T scale, int Tk) {  \
        softmax_backward_impl<T>(p, dp, scale, Tk);                                          \
    }

TL_ATTENTION_KERNELS(float, f32)
TL_ATTENTION_KERNELS(double, f64)
