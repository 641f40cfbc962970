// Row-wise logsumexp and the InfoNCE / NT-Xent cross-entropy on the GPU; one block per row.
//   lse_i  = m_i + log sum_j exp(x_ij - m_i)
//   loss_i = lse_i(S_i / tau, diagonal masked if asked) - S_i,pos(i) / tau,  pos(i) = (i+shift) % C
//   P_ij   = exp(S_ij / tau - m_i) / sum_j exp(S_ij / tau - m_i), written over S (backward)
#include "common.cuh"

// mx and tot (row max and sum) are kept for the backward: exp(x - mx) / tot is the softmax
// to full precision, where exp(x - lse) would lose digits to the rounding of a large lse.
template <typename T>
__device__ void row_logsumexp_impl(const T* x, T* out, T* mx, T* tot_out, int K) {
    __shared__ T buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)K;
    T m = -tl_inf<T>();
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) m = tl_max(m, x[off + j]);
    m = tl_block_max(m, buf);
    if (m == -tl_inf<T>() || m == tl_inf<T>()) {
        if (threadIdx.x == 0) {
            out[blockIdx.x] = m;
            mx[blockIdx.x] = m;
            tot_out[blockIdx.x] = T(1);
        }
        return;
    }
    T tot = 0;
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) {
        T d = x[off + j] - m;
        if (tl_keep(d)) tot += tl_exp(d);
    }
    tot = tl_block_sum(tot, buf);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = m + tl_log(tot);
        mx[blockIdx.x] = m;
        tot_out[blockIdx.x] = tot;
    }
}

// One block per row, as the forward: the row's max and sum are read once per thread and
// no element index is divided by K (a 64-bit division per element in a grid-stride loop).
template <typename T>
__device__ void row_logsumexp_backward_impl(const T* x, const T* mx, const T* tot, const T* g,
                                            T* gx, int R, int K) {
    const int i = blockIdx.x;
    const long long off = (long long)i * K;
    const T m = mx[i];
    const bool finite = m != tl_inf<T>() && m != -tl_inf<T>();
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) {
        T d = x[off + j] - m;
        gx[off + j] = (finite && tl_keep(d)) ? g[i] * tl_exp(d) / tot[i] : T(0);
    }
}

template <typename T>
__device__ void row_cross_entropy_impl(T* s, T inv_tau, int shift, int mask_diag, T* loss,
                                       int C) {
    __shared__ T buf[TL_BLOCK];
    const int i = blockIdx.x;
    T* r = s + (long long)i * C;
    const int pos = (i + shift) % C;
    T m = -tl_inf<T>();
    for (int j = threadIdx.x; j < C; j += TL_BLOCK)
        if (!(mask_diag && j == i)) m = tl_max(m, r[j] * inv_tau);
    m = tl_block_max(m, buf);
    T tot = 0;
    for (int j = threadIdx.x; j < C; j += TL_BLOCK) {
        if (mask_diag && j == i) continue;
        T d = r[j] * inv_tau - m;
        if (tl_keep(d)) tot += tl_exp(d);
    }
    tot = tl_block_sum(tot, buf);
    const T target = r[pos] * inv_tau;
    __syncthreads();  // every thread has read r[pos] before the row is overwritten
    if (threadIdx.x == 0) loss[i] = m + tl_log(tot) - target;
    const T inv = T(1) / tot;  // P = exp(v - m) / tot: full precision even when lse is large
    for (int j = threadIdx.x; j < C; j += TL_BLOCK) {
        T d = r[j] * inv_tau - m;
        r[j] = (mask_diag && j == i) ? T(0) : (tl_keep(d) ? tl_exp(d) * inv : T(0));
    }
}

// G_ij = g_i inv_tau (P_ij - [j == pos i]), one thread per entry (coalesced).
template <typename T>
__device__ __forceinline__ T tl_ce_grad_entry(const T* p, const T* g, T inv_tau, int shift,
                                              int i, int j, int C) {
    return g[i] * inv_tau * (p[(long long)i * C + j] - (j == (i + shift) % C ? T(1) : T(0)));
}

template <typename T>
__device__ void cross_entropy_grad_impl(const T* p, const T* g, T inv_tau, int shift, T* out,
                                        int R, int C) {
    const int i = blockIdx.x;  // one block per row, as row_cross_entropy: no division by C
    for (int j = threadIdx.x; j < C; j += TL_BLOCK)
        out[(long long)i * C + j] = tl_ce_grad_entry(p, g, inv_tau, shift, i, j, C);
}

// Symmetric (NT-Xent, C x C): G + G^T. Reading G^T entry by entry would stride by C through
// P (uncoalesced); instead each block takes a 32 x 32 tile of the output, first loads the
// mirror tile of G with consecutive threads on consecutive columns into shared memory
// (padded to 33 columns against bank conflicts), then writes G_ij + tile^T, again along rows.
template <typename T>
__device__ void cross_entropy_grad_symmetric_impl(const T* p, const T* g, T inv_tau,
                                                  int shift, T* out, int C) {
    __shared__ T tile[32][33];
    const int n = (C + 31) / 32;
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5, rows = TL_BLOCK / 32;
    for (long long t = blockIdx.x; t < (long long)n * n; t += gridDim.x) {
        const int ti = (int)(t / n), tj = (int)(t % n);   // output rows ti*32.., cols tj*32..
        for (int r = ty; r < 32; r += rows) {             // tile[r][x] = G[tj*32 + r][ti*32 + x]
            const int i = tj * 32 + r, j = ti * 32 + tx;
            tile[r][tx] = (i < C && j < C) ? tl_ce_grad_entry(p, g, inv_tau, shift, i, j, C)
                                           : T(0);
        }
        __syncthreads();
        for (int r = ty; r < 32; r += rows) {
            const int i = ti * 32 + r, j = tj * 32 + tx;
            if (i < C && j < C)
                out[(long long)i * C + j] =
                    tl_ce_grad_entry(p, g, inv_tau, shift, i, j, C) + tile[tx][r];
        }
        __syncthreads();                                  // the tile is reused next round
    }
}

template <typename T>
__device__ void normalize_rows_impl(const T* z, T* zn, T* norm, T eps, int D) {
    __shared__ T buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)D;
    T ss = 0;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) ss += z[off + j] * z[off + j];
    ss = tl_block_sum(ss, buf);
    T nr = tl_max(tl_sqrt(ss), eps);
    if (threadIdx.x == 0) norm[blockIdx.x] = nr;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) zn[off + j] = z[off + j] / nr;
}

template <typename T>
__device__ void normalize_rows_backward_impl(const T* gzn, const T* zn, const T* norm, T eps,
                                             T* gz, int D) {
    __shared__ T buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)D;
    const T nr = norm[blockIdx.x];
    if (nr <= eps) {  // the norm was clamped: z / eps, a plain scaling
        for (int j = threadIdx.x; j < D; j += TL_BLOCK) gz[off + j] = gzn[off + j] / nr;
        return;
    }
    T dot = 0;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) dot += gzn[off + j] * zn[off + j];
    dot = tl_block_sum(dot, buf);
    for (int j = threadIdx.x; j < D; j += TL_BLOCK)
        gz[off + j] = (gzn[off + j] - zn[off + j] * dot) / nr;
}

#define TL_CONTRASTIVE_KERNELS(T, SFX)                                                       \
    extern "C" __global__ void row_logsumexp_##SFX(const T* x, T* out, T* mx, T* tot, int K) {\
        row_logsumexp_impl<T>(x, out, mx, tot, K);                                           \
    }                                                                                        \
    extern "C" __global__ void row_logsumexp_backward_##SFX(const T* x, const T* mx,         \
        const T* tot, const T* g, T* gx, int R, int K) {                                     \
        row_logsumexp_backward_impl<T>(x, mx, tot, g, gx, R, K);                             \
    }                                                                                        \
    extern "C" __global__ void row_cross_entropy_##SFX(T* s, T inv_tau, int shift,          \
                                                       int mask_diag, T* loss, int C) {      \
        row_cross_entropy_impl<T>(s, inv_tau, shift, mask_diag, loss, C);                    \
    }                                                                                        \
    extern "C" __global__ void cross_entropy_grad_##SFX(const T* p, const T* g, T inv_tau,   \
        int shift, T* out, int R, int C) {                                                   \
        cross_entropy_grad_impl<T>(p, g, inv_tau, shift, out, R, C);                         \
    }                                                                                        \
    extern "C" __global__ void cross_entropy_grad_symmetric_##SFX(const T* p, const T* g,    \
        T inv_tau, int shift, T* out, int C) {                                               \
        cross_entropy_grad_symmetric_impl<T>(p, g, inv_tau, shift, out, C);                  \
    }                                                                                        \
    extern "C" __global__ void normalize_rows_##SFX(const T* z, T* zn, T* norm, T eps, int D) {\
        normalize_rows_impl<T>(z, zn, norm, eps, D);                                         \
    }                                                                                        \
    extern "C" __global__ void normalize_rows_backward_##SFX(const T* gzn, const T* zn,      \
        const T* norm, T eps, T* gz, int D) {                                                \
        normalize_rows_backward_impl<T>(gzn, zn, norm, eps, gz, D);                          \
    }

TL_CONTRASTIVE_KERNELS(float, f32)
TL_CONTRASTIVE_KERNELS(double, f64)
