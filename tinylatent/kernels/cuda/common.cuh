// Shared helpers for tinylatent's CUDA kernels (compiled by NVRTC through CuPy's RawModule,
// and by `nvcc -ptx` in the tests). Every kernel is a template instantiated for float and
// double under extern "C" names with a _f32 / _f64 suffix; the ones listed in
// kernels/cuda half_ops also for float16 storage (tl_half, suffix _f16) and bfloat16 storage
// (tl_bf16, suffix _bf16).
#pragma once

// Threads per block of every kernel (a power of two): defined once, in kernels/cuda
// (BLOCK), and passed as -DTL_BLOCK, so the launches and the shared buffers always agree.
#ifndef TL_BLOCK
#error "TL_BLOCK is not defined: compile with -DTL_BLOCK=<kernels.cuda.BLOCK>"
#endif
static_assert(TL_BLOCK >= 32 && TL_BLOCK <= 1024 && (TL_BLOCK & (TL_BLOCK - 1)) == 0,
              "TL_BLOCK must be a power of two in [32, 1024]");

// float16 storage with float arithmetic (what PyTorch's half kernels do: load, compute in
// float32, round once on the store). The 16 bits are converted by the PTX cvt instructions
// themselves rather than through cuda_fp16.h, which NVRTC finds only when CUDA's include
// directory is on its path. The CPU emulation (tests/cuda_emu) defines its own conversions.
struct tl_half { unsigned short bits; };
#ifndef TL_CUDA_EMU
__device__ __forceinline__ float tl_half_bits_to_float(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ unsigned short tl_float_to_half_bits(float f) {  // to nearest even
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif

// bfloat16 storage (the top 16 bits of a float32: 8 exponent bits, 7 mantissa bits), float
// arithmetic, as for tl_half. The conversions are integer operations rather than PTX's
// cvt.rn.bf16.f32, which exists only from sm_80: a module holding them compiles for every
// architecture (its float32 kernels included), and the CPU emulation runs this same code.
struct tl_bf16 { unsigned short bits; };
__device__ __forceinline__ float tl_bf16_bits_to_float(unsigned short h) {
    return __int_as_float((int)((unsigned)h << 16));
}
__device__ __forceinline__ unsigned short tl_float_to_bf16_bits(float f) {
    const unsigned u = (unsigned)__float_as_int(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)            // NaN: keep the sign, make it quiet
        return (unsigned short)((u >> 16) | 0x0040u);
    // to nearest, ties to even: add 0x7fff plus the lowest kept bit, drop the low 16 bits
    // (a carry into the exponent rounds up to the next binade, or to inf past the largest)
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// The arithmetic type of a storage type: float for tl_half and tl_bf16, the type itself
// otherwise.
template <typename T> struct tl_compute { typedef T type; };
template <> struct tl_compute<tl_half> { typedef float type; };
template <> struct tl_compute<tl_bf16> { typedef float type; };

// Load a stored value as the arithmetic type C, and store C as T. For float and double
// these are plain casts, so their kernels compute exactly what they did before tl_half.
template <typename C, typename T> __device__ __forceinline__ C tl_ld(T v) { return (C)v; }
template <> __device__ __forceinline__ float tl_ld<float, tl_half>(tl_half v) {
    return tl_half_bits_to_float(v.bits);
}
template <> __device__ __forceinline__ double tl_ld<double, tl_half>(tl_half v) {
    return (double)tl_half_bits_to_float(v.bits);
}
template <> __device__ __forceinline__ float tl_ld<float, tl_bf16>(tl_bf16 v) {
    return tl_bf16_bits_to_float(v.bits);
}
template <> __device__ __forceinline__ double tl_ld<double, tl_bf16>(tl_bf16 v) {
    return (double)tl_bf16_bits_to_float(v.bits);
}
template <typename T, typename C> __device__ __forceinline__ T tl_st(C v) { return (T)v; }
template <> __device__ __forceinline__ tl_half tl_st<tl_half, float>(float v) {
    tl_half h;
    h.bits = tl_float_to_half_bits(v);
    return h;
}
template <> __device__ __forceinline__ tl_half tl_st<tl_half, double>(double v) {
    return tl_st<tl_half, float>((float)v);   // through float: a double rounding, < 1 ulp
}
template <> __device__ __forceinline__ tl_bf16 tl_st<tl_bf16, float>(float v) {
    tl_bf16 h;
    h.bits = tl_float_to_bf16_bits(v);
    return h;
}
template <> __device__ __forceinline__ tl_bf16 tl_st<tl_bf16, double>(double v) {
    return tl_st<tl_bf16, float>((float)v);   // through float: a double rounding, < 1 ulp
}

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

// Warp-wide sum / max by butterfly shuffles: every lane gets the result, no shared memory.
template <typename T> __device__ __forceinline__ T tl_warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T> __device__ __forceinline__ T tl_warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = tl_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum / max over TL_BLOCK threads; every thread gets it. Each warp reduces by
// shuffles, its lane 0 leaves the partial in buf (TL_BLOCK / 32 entries used), warp 0
// reduces the partials by shuffles again: 3 barriers where a shared-memory tree takes
// log2(TL_BLOCK) + 2. TL_BLOCK is a power of two >= 32, so every warp is full (the shuffles'
// full mask holds). The last barrier lets a caller reuse buf straight away.
#define TL_DEFINE_BLOCK_REDUCE(NAME, WARP_OP, IDENTITY)                                     \
    template <typename T> __device__ T NAME(T v, T* buf) {                                  \
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;                         \
        v = WARP_OP(v);                                                                     \
        if (lane == 0) buf[warp] = v;                                                       \
        __syncthreads();                                                                    \
        if (warp == 0) {                                                                    \
            T w = lane < TL_BLOCK / 32 ? buf[lane] : IDENTITY;                              \
            w = WARP_OP(w);                                                                 \
            if (lane == 0) buf[0] = w;                                                      \
        }                                                                                   \
        __syncthreads();                                                                    \
        T r = buf[0];                                                                       \
        __syncthreads();                                                                    \
        return r;                                                                           \
    }

TL_DEFINE_BLOCK_REDUCE(tl_block_sum, tl_warp_sum, T(0))
TL_DEFINE_BLOCK_REDUCE(tl_block_max, tl_warp_max, -tl_inf<T>())

#define TL_GRID_STRIDE(idx, total)                                                     \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < (total); \
         idx += (long long)blockDim.x * gridDim.x)
