// Fused, tiled attention with an online softmax (Dao et al. 2022, Alg. 1; the backward of
// Dao 2023, Alg. 2): O(T) memory, the (Tq, Tk) score matrix is never stored.
//   forward:  out_i = sum_j P_ij v_j,  P_ij = exp(scale q_i.k_j - lse_i),
//             lse_i = log sum_j exp(scale q_i.k_j)   (over j <= i when causal)
//   backward: D_i = dout_i . out_i,  dP_ij = dout_i . v_j,  dS_ij = P_ij (dP_ij - D_i),
//             dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i P_ij dout_i
// One thread per query row (forward, dq) or key row (dk, dv), TL_BLOCK rows a block; the
// other side streams through shared memory in tiles of TL_TILE rows, loaded cooperatively
// (consecutive threads on consecutive features: coalesced). The running max m, sum l and the
// output row live in registers (D, Dv <= TL_MAX_D). A row with no key kept (lse = -inf) gets
// zero output and zero gradients, as the reference. q, k, v, out, dout: (N, T, D) contiguous.
// float16 and bfloat16 (tl_half, tl_bf16) storage: tiles, registers, lse and D_i are float
// (C), each output is rounded to its 16 bits once.
#include "common.cuh"

#define TL_TILE 16
#define TL_MAX_D 128

template <typename C, typename T>
__device__ void load_rows(C* dst, const T* src, long long row0, int rows, int total, int d) {
    // rows [row0, row0 + rows) of a (total, d) slice into dst (rows x d), zeros past the end
    for (int e = threadIdx.x; e < rows * d; e += TL_BLOCK) {
        const int r = e / d, c = e - r * d;
        dst[e] = (row0 + r < total) ? tl_ld<C>(src[(row0 + r) * d + c]) : C(0);
    }
}

// Which rows this thread owns: blocks of TL_BLOCK rows, blocks_per_seq blocks per sequence n.
struct RowBlock {
    long long n;   // the sequence (batch x head) index
    int r0, r;     // the block's first row and this thread's row (may be >= rows: idle)
};

__device__ RowBlock row_block(int rows) {
    const int blocks_per_seq = (rows + TL_BLOCK - 1) / TL_BLOCK;
    RowBlock b;
    b.n = blockIdx.x / blocks_per_seq;
    b.r0 = (int)(blockIdx.x % blocks_per_seq) * TL_BLOCK;
    b.r = b.r0 + threadIdx.x;
    return b;
}

template <typename T, typename C>
__device__ void flash_forward_impl(const T* q, const T* k, const T* v, T* out, C* lse, C scale,
                                   int causal, int Tq, int Tk, int D, int Dv) {
    __shared__ C ks[TL_TILE * TL_MAX_D];
    __shared__ C vs[TL_TILE * TL_MAX_D];
    const RowBlock rb = row_block(Tq);
    const long long n = rb.n;
    const int i0 = rb.r0, i = rb.r;
    const bool row = i < Tq;
    const T* qn = q + n * Tq * D;
    const T* kn = k + n * Tk * D;
    const T* vn = v + n * Tk * Dv;
    C qi[TL_MAX_D], o[TL_MAX_D];
    for (int c = 0; c < D; ++c) qi[c] = row ? tl_ld<C>(qn[(long long)i * D + c]) * scale : C(0);
    for (int c = 0; c < Dv; ++c) o[c] = C(0);
    C m = -tl_inf<C>(), l = C(0);
    // causal: keys past the block's last row are masked for every row of the block
    const int last = causal ? min(Tk, i0 + TL_BLOCK) : Tk;
    for (int j0 = 0; j0 < last; j0 += TL_TILE) {
        load_rows(ks, kn, j0, TL_TILE, Tk, D);
        load_rows(vs, vn, j0, TL_TILE, Tk, Dv);
        __syncthreads();
        for (int jj = 0; row && jj < TL_TILE; ++jj) {
            const int j = j0 + jj;
            if (j >= Tk || (causal && j > i)) break;
            C s = 0;
            for (int c = 0; c < D; ++c) s += qi[c] * ks[jj * D + c];
            const C m_new = tl_max(m, s);
            const C corr = tl_exp(m - m_new);           // 0 for the first key (m = -inf)
            const C p = tl_exp(s - m_new);
            l = l * corr + p;
            for (int c = 0; c < Dv; ++c) o[c] = o[c] * corr + p * vs[jj * Dv + c];
            m = m_new;
        }
        __syncthreads();
    }
    if (!row) return;
    const long long off = (n * Tq + i);
    const bool empty = l == C(0);                       // no key kept (Tk = 0)
    for (int c = 0; c < Dv; ++c) out[off * Dv + c] = tl_st<T>(empty ? C(0) : o[c] / l);
    lse[off] = empty ? -tl_inf<C>() : m + tl_log(l);
}

// dq (one thread per query row); also writes D_i = dout_i . out_i for the dk/dv kernel.
template <typename T, typename C>
__device__ void flash_backward_dq_impl(const T* q, const T* k, const T* v, const T* out,
                                       const C* lse, const T* dout, T* dq, C* drow, C scale,
                                       int causal, int Tq, int Tk, int D, int Dv) {
    __shared__ C ks[TL_TILE * TL_MAX_D];
    __shared__ C vs[TL_TILE * TL_MAX_D];
    const RowBlock rb = row_block(Tq);
    const long long n = rb.n;
    const int i0 = rb.r0, i = rb.r;
    const bool row = i < Tq;
    const long long off = n * Tq + i;
    C qi[TL_MAX_D], gi[TL_MAX_D], acc[TL_MAX_D];
    C di = 0, li = -tl_inf<C>();
    if (row) {
        for (int c = 0; c < D; ++c) qi[c] = tl_ld<C>(q[off * D + c]) * scale;
        for (int c = 0; c < Dv; ++c) {
            gi[c] = tl_ld<C>(dout[off * Dv + c]);
            di += gi[c] * tl_ld<C>(out[off * Dv + c]);
        }
        li = lse[off];
        drow[off] = di;
    }
    for (int c = 0; c < D; ++c) acc[c] = C(0);
    const bool live = row && li != -tl_inf<C>();
    const int last = causal ? min(Tk, i0 + TL_BLOCK) : Tk;
    for (int j0 = 0; j0 < last; j0 += TL_TILE) {
        load_rows(ks, k + n * Tk * D, j0, TL_TILE, Tk, D);
        load_rows(vs, v + n * Tk * Dv, j0, TL_TILE, Tk, Dv);
        __syncthreads();
        for (int jj = 0; live && jj < TL_TILE; ++jj) {
            const int j = j0 + jj;
            if (j >= Tk || (causal && j > i)) break;
            C s = 0, dp = 0;
            for (int c = 0; c < D; ++c) s += qi[c] * ks[jj * D + c];
            for (int c = 0; c < Dv; ++c) dp += gi[c] * vs[jj * Dv + c];
            const C ds = tl_exp(s - li) * (dp - di);
            for (int c = 0; c < D; ++c) acc[c] += ds * ks[jj * D + c];
        }
        __syncthreads();
    }
    if (row)
        for (int c = 0; c < D; ++c) dq[off * D + c] = tl_st<T>(acc[c] * scale);
}

// dk and dv (one thread per key row), streaming the query side: q, dout, lse, D.
template <typename T, typename C>
__device__ void flash_backward_dkdv_impl(const T* q, const T* k, const T* v, const C* lse,
                                         const C* drow, const T* dout, T* dk, T* dv, C scale,
                                         int causal, int Tq, int Tk, int D, int Dv) {
    __shared__ C qs[TL_TILE * TL_MAX_D];
    __shared__ C gs[TL_TILE * TL_MAX_D];
    __shared__ C ls[TL_TILE], ds_row[TL_TILE];
    const RowBlock rb = row_block(Tk);
    const long long n = rb.n;
    const int j0k = rb.r0, j = rb.r;
    const bool row = j < Tk;
    const long long off = n * Tk + j;
    C kj[TL_MAX_D], vj[TL_MAX_D], ak[TL_MAX_D], av[TL_MAX_D];
    for (int c = 0; c < D; ++c) {
        kj[c] = row ? tl_ld<C>(k[off * D + c]) : C(0);
        ak[c] = C(0);
    }
    for (int c = 0; c < Dv; ++c) {
        vj[c] = row ? tl_ld<C>(v[off * Dv + c]) : C(0);
        av[c] = C(0);
    }
    // causal: queries before the block's first key see none of its keys
    for (int i0 = causal ? j0k : 0; i0 < Tq; i0 += TL_TILE) {
        load_rows(qs, q + n * Tq * D, i0, TL_TILE, Tq, D);
        load_rows(gs, dout + n * Tq * Dv, i0, TL_TILE, Tq, Dv);
        for (int e = threadIdx.x; e < TL_TILE; e += TL_BLOCK) {
            const bool in = i0 + e < Tq;
            ls[e] = in ? lse[n * Tq + i0 + e] : -tl_inf<C>();
            ds_row[e] = in ? drow[n * Tq + i0 + e] : C(0);
        }
        __syncthreads();
        for (int ii = 0; row && ii < TL_TILE; ++ii) {
            const int i = i0 + ii;
            if (i >= Tq) break;
            if ((causal && j > i) || ls[ii] == -tl_inf<C>()) continue;
            C s = 0, dp = 0;
            for (int c = 0; c < D; ++c) s += qs[ii * D + c] * kj[c];
            for (int c = 0; c < Dv; ++c) dp += gs[ii * Dv + c] * vj[c];
            const C p = tl_exp(s * scale - ls[ii]);
            const C ds = p * (dp - ds_row[ii]);
            for (int c = 0; c < Dv; ++c) av[c] += p * gs[ii * Dv + c];
            for (int c = 0; c < D; ++c) ak[c] += ds * qs[ii * D + c];
        }
        __syncthreads();
    }
    if (!row) return;
    for (int c = 0; c < D; ++c) dk[off * D + c] = tl_st<T>(ak[c] * scale);
    for (int c = 0; c < Dv; ++c) dv[off * Dv + c] = tl_st<T>(av[c]);
}

// C: the arithmetic type, also of lse, D_i and scale (float for tl_half and tl_bf16, else T)
#define TL_FLASH_KERNELS(T, C, SFX)                                                          \
    extern "C" __global__ void flash_attention_forward_##SFX(const T* q, const T* k,         \
        const T* v, T* out, C* lse, C scale, int causal, int Tq, int Tk, int D, int Dv) {    \
        flash_forward_impl<T, C>(q, k, v, out, lse, scale, causal, Tq, Tk, D, Dv);           \
    }                                                                                        \
    extern "C" __global__ void flash_attention_backward_dq_##SFX(const T* q, const T* k,     \
        const T* v, const T* out, const C* lse, const T* dout, T* dq, C* drow, C scale,      \
        int causal, int Tq, int Tk, int D, int Dv) {                                         \
        flash_backward_dq_impl<T, C>(q, k, v, out, lse, dout, dq, drow, scale, causal, Tq,   \
                                     Tk, D, Dv);                                             \
    }                                                                                        \
    extern "C" __global__ void flash_attention_backward_dkdv_##SFX(const T* q, const T* k,   \
        const T* v, const C* lse, const C* drow, const T* dout, T* dk, T* dv, C scale,       \
        int causal, int Tq, int Tk, int D, int Dv) {                                         \
        flash_backward_dkdv_impl<T, C>(q, k, v, lse, drow, dout, dk, dv, scale, causal, Tq,  \
                                       Tk, D, Dv);                                           \
    }

TL_FLASH_KERNELS(float, float, f32)
TL_FLASH_KERNELS(double, double, f64)
TL_FLASH_KERNELS(tl_half, float, f16)
TL_FLASH_KERNELS(tl_bf16, float, bf16)
