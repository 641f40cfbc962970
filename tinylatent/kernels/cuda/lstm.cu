// The pointwise part of an LSTM cell on the GPU (gate order i, f, g, o as in PyTorch); the
// twin of kernels/numba/lstm.py, same formulas:
//   i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c' = f c + i g, h' = o tanh(c')
//   dc = gc + gh o (1 - tanh(c')^2); da_i = dc g i(1-i); da_f = dc c f(1-f);
//   da_g = dc i (1-g^2); da_o = gh tanh(c') o(1-o); dc_prev = dc f
// One thread per (b, j) element of the (B, H) state.
#include "common.cuh"

template <typename T> __device__ __forceinline__ T tl_sigmoid(T a) {
    // exp of a non-positive argument only: no overflow for large |a|
    if (a >= T(0)) return T(1) / (T(1) + tl_exp(-a));
    T e = tl_exp(a);
    return e / (T(1) + e);
}
__device__ __forceinline__ float tl_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double tl_tanh(double x) { return tanh(x); }

template <typename T>
__device__ void lstm_cell_forward_impl(const T* gates, const T* c, T* act, T* c_new,
                                       T* tanh_c, T* h_new, int B, int H) {
    TL_GRID_STRIDE(idx, (long long)B * H) {
        // 32-bit division (B * H < 2**31, checked before launch)
        const int e = (int)idx, r = e / H, j = e - r * H;
        const long long row = (long long)r * 4 * H;
        const T i = tl_sigmoid(gates[row + j]);
        const T f = tl_sigmoid(gates[row + H + j]);
        const T g = tl_tanh(gates[row + 2 * H + j]);
        const T o = tl_sigmoid(gates[row + 3 * H + j]);
        act[row + j] = i;
        act[row + H + j] = f;
        act[row + 2 * H + j] = g;
        act[row + 3 * H + j] = o;
        const T cn = f * c[idx] + i * g;
        const T tc = tl_tanh(cn);
        c_new[idx] = cn;
        tanh_c[idx] = tc;
        h_new[idx] = o * tc;
    }
}

template <typename T>
__device__ void lstm_cell_backward_impl(const T* act, const T* c, const T* tanh_c, const T* gh,
                                        const T* gc, T* dgates, T* dc_prev, int B, int H) {
    TL_GRID_STRIDE(idx, (long long)B * H) {
        const int e = (int)idx, r = e / H, j = e - r * H;
        const long long row = (long long)r * 4 * H;
        const T i = act[row + j], f = act[row + H + j];
        const T g = act[row + 2 * H + j], o = act[row + 3 * H + j];
        const T tc = tanh_c[idx], dh = gh[idx];
        const T dc = gc[idx] + dh * o * (T(1) - tc * tc);
        dgates[row + j] = dc * g * i * (T(1) - i);
        dgates[row + H + j] = dc * c[idx] * f * (T(1) - f);
        dgates[row + 2 * H + j] = dc * i * (T(1) - g * g);
        dgates[row + 3 * H + j] = dh * tc * o * (T(1) - o);
        dc_prev[idx] = dc * f;
    }
}

#define TL_LSTM_KERNELS(T, SFX)                                                               \
    extern "C" __global__ void lstm_cell_forward_##SFX(const T* gates, const T* c, T* act,    \
        T* c_new, T* tanh_c, T* h_new, int B, int H) {                                        \
        lstm_cell_forward_impl<T>(gates, c, act, c_new, tanh_c, h_new, B, H);                 \
    }                                                                                         \
    extern "C" __global__ void lstm_cell_backward_##SFX(const T* act, const T* c,             \
        const T* tanh_c, const T* gh, const T* gc, T* dgates, T* dc_prev, int B, int H) {     \
        lstm_cell_backward_impl<T>(act, c, tanh_c, gh, gc, dgates, dc_prev, B, H);            \
    }

TL_LSTM_KERNELS(float, f32)
TL_LSTM_KERNELS(double, f64)
