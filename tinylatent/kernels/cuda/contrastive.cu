// Row-wise logsumexp and the InfoNCE / NT-Xent cross-entropy on the GPU; one block per row.
//   lse_i  = m_i + log sum_j exp(x_ij - m_i)
//   loss_i = lse_i(S_i / tau, diagonal masked if asked) - S_i,pos(i) / tau,  pos(i) = (i+shift) % C
//   P_ij   = exp(S_ij / tau - m_i) / sum_j exp(S_ij / tau - m_i), written over S (backward)
// T is the storage type, A the arithmetic one (float for tl_half and tl_bf16, else T): 16-bit
// rows are reduced in float, the row statistics (mx, tot, norm) kept in float, each output
// rounded once.
#include "common.cuh"

// mx and tot (row max and sum) are kept for the backward: exp(x - mx) / tot is the softmax
// to full precision, where exp(x - lse) would lose digits to the rounding of a large lse.
template <typename T, typename A>
__device__ void row_logsumexp_impl(const T* x, T* out, A* mx, A* tot_out, int K) {
    __shared__ A buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)K;
    A m = -tl_inf<A>();
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) m = tl_max(m, tl_ld<A>(x[off + j]));
    m = tl_block_max(m, buf);
    if (m == -tl_inf<A>() || m == tl_inf<A>()) {
        if (threadIdx.x == 0) {
            out[blockIdx.x] = tl_st<T>(m);
            mx[blockIdx.x] = m;
            tot_out[blockIdx.x] = A(1);
        }
        return;
    }
    A tot = 0;
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) {
        A d = tl_ld<A>(x[off + j]) - m;
        if (tl_keep(d)) tot += tl_exp(d);
    }
    tot = tl_block_sum(tot, buf);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = tl_st<T>(m + tl_log(tot));
        mx[blockIdx.x] = m;
        tot_out[blockIdx.x] = tot;
    }
}

// One block per row, as the forward: the row's max and sum are read once per thread and
// no element index is divided by K (a 64-bit division per element in a grid-stride loop).
template <typename T, typename A>
__device__ void row_logsumexp_backward_impl(const T* x, const A* mx, const A* tot, const T* g,
                                            T* gx, int R, int K) {
    const int i = blockIdx.x;
    const long long off = (long long)i * K;
    const A m = mx[i], gi = tl_ld<A>(g[i]);
    const bool finite = m != tl_inf<A>() && m != -tl_inf<A>();
    for (int j = threadIdx.x; j < K; j += TL_BLOCK) {
        A d = tl_ld<A>(x[off + j]) - m;
        gx[off + j] = tl_st<T>((finite && tl_keep(d)) ? gi * tl_exp(d) / tot[i] : A(0));
    }
}

template <typename T, typename A>
__device__ void row_cross_entropy_impl(T* s, A inv_tau, int shift, int mask_diag, T* loss,
                                       int C) {
    __shared__ A buf[TL_BLOCK];
    const int i = blockIdx.x;
    T* r = s + (long long)i * C;
    const int pos = (i + shift) % C;
    A m = -tl_inf<A>();
    for (int j = threadIdx.x; j < C; j += TL_BLOCK)
        if (!(mask_diag && j == i)) m = tl_max(m, tl_ld<A>(r[j]) * inv_tau);
    m = tl_block_max(m, buf);
    A tot = 0;
    for (int j = threadIdx.x; j < C; j += TL_BLOCK) {
        if (mask_diag && j == i) continue;
        A d = tl_ld<A>(r[j]) * inv_tau - m;
        if (tl_keep(d)) tot += tl_exp(d);
    }
    tot = tl_block_sum(tot, buf);
    const A target = tl_ld<A>(r[pos]) * inv_tau;
    __syncthreads();  // every thread has read r[pos] before the row is overwritten
    if (threadIdx.x == 0) loss[i] = tl_st<T>(m + tl_log(tot) - target);
    const A inv = A(1) / tot;  // P = exp(v - m) / tot: full precision even when lse is large
    for (int j = threadIdx.x; j < C; j += TL_BLOCK) {
        A d = tl_ld<A>(r[j]) * inv_tau - m;
        r[j] = tl_st<T>((mask_diag && j == i) ? A(0) : (tl_keep(d) ? tl_exp(d) * inv : A(0)));
    }
}

// G_ij = g_i inv_tau (P_ij - [j == pos i]), one thread per entry (coalesced).
template <typename T, typename A>
__device__ __forceinline__ A tl_ce_grad_entry(const T* p, const T* g, A inv_tau, int shift,
                                              int i, int j, int C) {
    return tl_ld<A>(g[i]) * inv_tau *
           (tl_ld<A>(p[(long long)i * C + j]) - (j == (i + shift) % C ? A(1) : A(0)));
}

template <typename T, typename A>
__device__ void cross_entropy_grad_impl(const T* p, const T* g, A inv_tau, int shift, T* out,
                                        int R, int C) {
    const int i = blockIdx.x;  // one block per row, as row_cross_entropy: no division by C
    for (int j = threadIdx.x; j < C; j += TL_BLOCK)
        out[(long long)i * C + j] = tl_st<T>(tl_ce_grad_entry(p, g, inv_tau, shift, i, j, C));
}

// Symmetric (NT-Xent, C x C): G + G^T. Reading G^T entry by entry would stride by C through
// P (uncoalesced); instead each block takes a 32 x 32 tile of the output, first loads the
// mirror tile of G with consecutive threads on consecutive columns into shared memory
// (padded to 33 columns against bank conflicts), then writes G_ij + tile^T, again along rows.
template <typename T, typename A>
__device__ void cross_entropy_grad_symmetric_impl(const T* p, const T* g, A inv_tau,
                                                  int shift, T* out, int C) {
    __shared__ A tile[32][33];
    const int n = (C + 31) / 32;
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5, rows = TL_BLOCK / 32;
    for (long long t = blockIdx.x; t < (long long)n * n; t += gridDim.x) {
        const int ti = (int)(t / n), tj = (int)(t % n);   // output rows ti*32.., cols tj*32..
        for (int r = ty; r < 32; r += rows) {             // tile[r][x] = G[tj*32 + r][ti*32 + x]
            const int i = tj * 32 + r, j = ti * 32 + tx;
            tile[r][tx] = (i < C && j < C) ? tl_ce_grad_entry(p, g, inv_tau, shift, i, j, C)
                                           : A(0);
        }
        __syncthreads();
        for (int r = ty; r < 32; r += rows) {
            const int i = ti * 32 + r, j = tj * 32 + tx;
            if (i < C && j < C)
                out[(long long)i * C + j] =
                    tl_st<T>(tl_ce_grad_entry(p, g, inv_tau, shift, i, j, C) + tile[tx][r]);
        }
        __syncthreads();                                  // the tile is reused next round
    }
}

template <typename T, typename A>
__device__ void normalize_rows_impl(const T* z, T* zn, A* norm, A eps, int D) {
    __shared__ A buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)D;
    A ss = 0;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK) {
        const A v = tl_ld<A>(z[off + j]);
        ss += v * v;
    }
    ss = tl_block_sum(ss, buf);
    A nr = tl_max(tl_sqrt(ss), eps);
    if (threadIdx.x == 0) norm[blockIdx.x] = nr;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK)
        zn[off + j] = tl_st<T>(tl_ld<A>(z[off + j]) / nr);
}

template <typename T, typename A>
__device__ void normalize_rows_backward_impl(const T* gzn, const T* zn, const A* norm, A eps,
                                             T* gz, int D) {
    __shared__ A buf[TL_BLOCK];
    const long long off = blockIdx.x * (long long)D;
    const A nr = norm[blockIdx.x];
    if (nr <= eps) {  // the norm was clamped: z / eps, a plain scaling
        for (int j = threadIdx.x; j < D; j += TL_BLOCK)
            gz[off + j] = tl_st<T>(tl_ld<A>(gzn[off + j]) / nr);
        return;
    }
    A dot = 0;
    for (int j = threadIdx.x; j < D; j += TL_BLOCK)
        dot += tl_ld<A>(gzn[off + j]) * tl_ld<A>(zn[off + j]);
    dot = tl_block_sum(dot, buf);
    for (int j = threadIdx.x; j < D; j += TL_BLOCK)
        gz[off + j] = tl_st<T>((tl_ld<A>(gzn[off + j]) - tl_ld<A>(zn[off + j]) * dot) / nr);
}

#define TL_CONTRASTIVE_KERNELS(T, A, SFX)                                                    \
    extern "C" __global__ void row_logsumexp_##SFX(const T* x, T* out, A* mx, A* tot, int K) {\
        row_logsumexp_impl<T, A>(x, out, mx, tot, K);                                        \
    }                                                                                        \
    extern "C" __global__ void row_logsumexp_backward_##SFX(const T* x, const A* mx,         \
        const A* tot, const T* g, T* gx, int R, int K) {                                     \
        row_logsumexp_backward_impl<T, A>(x, mx, tot, g, gx, R, K);                          \
    }                                                                                        \
    extern "C" __global__ void row_cross_entropy_##SFX(T* s, A inv_tau, int shift,          \
                                                       int mask_diag, T* loss, int C) {      \
        row_cross_entropy_impl<T, A>(s, inv_tau, shift, mask_diag, loss, C);                 \
    }                                                                                        \
    extern "C" __global__ void cross_entropy_grad_##SFX(const T* p, const T* g, A inv_tau,   \
        int shift, T* out, int R, int C) {                                                   \
        cross_entropy_grad_impl<T, A>(p, g, inv_tau, shift, out, R, C);                      \
    }                                                                                        \
    extern "C" __global__ void cross_entropy_grad_symmetric_##SFX(const T* p, const T* g,    \
        A inv_tau, int shift, T* out, int C) {                                               \
        cross_entropy_grad_symmetric_impl<T, A>(p, g, inv_tau, shift, out, C);               \
    }                                                                                        \
    extern "C" __global__ void normalize_rows_##SFX(const T* z, T* zn, A* norm, A eps, int D) {\
        normalize_rows_impl<T, A>(z, zn, norm, eps, D);                                      \
    }                                                                                        \
    extern "C" __global__ void normalize_rows_backward_##SFX(const T* gzn, const T* zn,      \
        const A* norm, A eps, T* gz, int D) {                                                \
        normalize_rows_backward_impl<T, A>(gzn, zn, norm, eps, gz, D);                       \
    }

TL_CONTRASTIVE_KERNELS(float, float, f32)
TL_CONTRASTIVE_KERNELS(double, double, f64)
TL_CONTRASTIVE_KERNELS(tl_half, float, f16)
TL_CONTRASTIVE_KERNELS(tl_bf16, float, bf16)
