// The pointwise part of an LSTM cell on the GPU (gate order i, f, g, o as in PyTorch); the
// twin of kernels/numba/lstm.py, same formulas:
//   i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c' = f c + i g, h' = o tanh(c')
//   dc = gc + gh o (1 - tanh(c')^2); da_i = dc g i(1-i); da_f = dc c f(1-f);
//   da_g = dc i (1-g^2); da_o = gh tanh(c') o(1-o); dc_prev = dc f
// One thread per (b, j) element of the (B, H) state. The lstm_step_* kernels are the same
// passes for one step of a sequence (tinylatent.ops.recurrent.lstm_sequence): they sum the
// two GEMM results and b_hh into the gates, and the backward adds the output's own gradient
// to the recurrent one and updates dL/dc in place. float16 and bfloat16 (tl_half, tl_bf16):
// every value is loaded into float (A), the gates and states computed there and each stored
// value rounded once.
#include "common.cuh"

template <typename T> __device__ __forceinline__ T tl_sigmoid(T a) {
    // exp of a non-positive argument only: no overflow for large |a|
    if (a >= T(0)) return T(1) / (T(1) + tl_exp(-a));
    T e = tl_exp(a);
    return e / (T(1) + e);
}
__device__ __forceinline__ float tl_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double tl_tanh(double x) { return tanh(x); }

// gates = gi + hh + bias (hh, bias read only when has_hh / has_bias: the cell kernels pass
// the gates alone, a sequence step passes the two GEMM results and b_hh unsummed).
template <typename T>
__device__ void lstm_step_forward_impl(const T* gi, const T* hh, const T* bias, int has_hh,
                                       int has_bias, const T* c, T* act, T* c_new, T* tanh_c,
                                       T* h_new, int B, int H) {
    typedef typename tl_compute<T>::type A;
    TL_GRID_STRIDE(idx, (long long)B * H) {
        // 32-bit division (B * H < 2**31, checked before launch)
        const int e = (int)idx, r = e / H, j = e - r * H;
        const long long row = (long long)r * 4 * H;
        A a[4];
        for (int k = 0; k < 4; ++k) {
            const long long at = row + (long long)k * H + j;
            a[k] = tl_ld<A>(gi[at]);
            if (has_hh) a[k] += tl_ld<A>(hh[at]);
            if (has_bias) a[k] += tl_ld<A>(bias[k * H + j]);
        }
        const A i = tl_sigmoid(a[0]);
        const A f = tl_sigmoid(a[1]);
        const A g = tl_tanh(a[2]);
        const A o = tl_sigmoid(a[3]);
        act[row + j] = tl_st<T>(i);
        act[row + H + j] = tl_st<T>(f);
        act[row + 2 * H + j] = tl_st<T>(g);
        act[row + 3 * H + j] = tl_st<T>(o);
        const A cn = f * tl_ld<A>(c[idx]) + i * g;
        const A tc = tl_tanh(cn);
        c_new[idx] = tl_st<T>(cn);
        tanh_c[idx] = tl_st<T>(tc);
        h_new[idx] = tl_st<T>(o * tc);
    }
}

// dL/dh' = dh (+ gout when has_gout); dc holds dL/dc' on entry, dL/dc on return (dc_in and
// dc_out may be the same array: each thread reads its element before writing it).
template <typename T>
__device__ void lstm_step_backward_impl(const T* act, const T* c, const T* tanh_c,
                                        const T* gout, int has_gout, const T* dh,
                                        const T* dc_in, T* dgates, T* dc_out, int B, int H) {
    typedef typename tl_compute<T>::type A;
    TL_GRID_STRIDE(idx, (long long)B * H) {
        const int e = (int)idx, r = e / H, j = e - r * H;
        const long long row = (long long)r * 4 * H;
        const A i = tl_ld<A>(act[row + j]), f = tl_ld<A>(act[row + H + j]);
        const A g = tl_ld<A>(act[row + 2 * H + j]), o = tl_ld<A>(act[row + 3 * H + j]);
        const A tc = tl_ld<A>(tanh_c[idx]);
        const A gh = has_gout ? tl_ld<A>(dh[idx]) + tl_ld<A>(gout[idx]) : tl_ld<A>(dh[idx]);
        const A dc = tl_ld<A>(dc_in[idx]) + gh * o * (A(1) - tc * tc);
        dgates[row + j] = tl_st<T>(dc * g * i * (A(1) - i));
        dgates[row + H + j] = tl_st<T>(dc * tl_ld<A>(c[idx]) * f * (A(1) - f));
        dgates[row + 2 * H + j] = tl_st<T>(dc * i * (A(1) - g * g));
        dgates[row + 3 * H + j] = tl_st<T>(gh * tc * o * (A(1) - o));
        dc_out[idx] = tl_st<T>(dc * f);
    }
}

#define TL_LSTM_KERNELS(T, SFX)                                                               \
    extern "C" __global__ void lstm_cell_forward_##SFX(const T* gates, const T* c, T* act,    \
        T* c_new, T* tanh_c, T* h_new, int B, int H) {                                        \
        lstm_step_forward_impl<T>(gates, gates, gates, 0, 0, c, act, c_new, tanh_c, h_new,    \
                                  B, H);                                                      \
    }                                                                                         \
    extern "C" __global__ void lstm_cell_backward_##SFX(const T* act, const T* c,             \
        const T* tanh_c, const T* gh, const T* gc, T* dgates, T* dc_prev, int B, int H) {     \
        lstm_step_backward_impl<T>(act, c, tanh_c, gh, 0, gh, gc, dgates, dc_prev, B, H);     \
    }                                                                                         \
    extern "C" __global__ void lstm_step_forward_##SFX(const T* gi, const T* hh,              \
        const T* bias, int has_bias, const T* c, T* act, T* c_new, T* tanh_c, T* h_new,       \
        int B, int H) {                                                                       \
        lstm_step_forward_impl<T>(gi, hh, bias, 1, has_bias, c, act, c_new, tanh_c, h_new,    \
                                  B, H);                                                      \
    }                                                                                         \
    extern "C" __global__ void lstm_step_backward_##SFX(const T* act, const T* c,             \
        const T* tanh_c, const T* gout, int has_gout, const T* dh, T* dc, T* dgates, int B,   \
        int H) {                                                                              \
        lstm_step_backward_impl<T>(act, c, tanh_c, gout, has_gout, dh, dc, dgates, dc, B, H); \
    }

TL_LSTM_KERNELS(float, f32)
TL_LSTM_KERNELS(double, f64)
TL_LSTM_KERNELS(tl_half, f16)
TL_LSTM_KERNELS(tl_bf16, bf16)
