// CUDA kernels of the fused downscale + per-sample squared error, the contract of
// csrc/common/downsample_loss.h (the definition is written out there).
//
// Forward, two launches:
//   1. one block per (plane, low-res row i, chunk of up to cw low-res columns): the vertical pass
//      for the padded columns the chunk needs goes to shared memory (ntaps rows of y read once per
//      block, coalesced), the horizontal pass reads it back (a warp per output when ntaps >= 32,
//      so lanes read consecutive words), and diff = D - x is written: the only global output.
//   2. one block per sample sums diff^2 in a fixed order: the loss is deterministic.
// Backward, one launch: the transpose of the reflect-padded strided FIR, a block per row of dy, each
// pixel gathering the few low-res diffs whose windows cover it: for each reflection image q of the
// pixel (q = Y, -Y, 2 (H - 1) - Y when inside the padded range) the rows i with
// 0 <= q + pad0 - i s < ntaps, and the same along the columns.
#include "../common/downsample_loss.h"
#include "cuda_common.cuh"

#include <stdexcept>

namespace {

using namespace rlse_cuda;

constexpr int kThreads = 256;
constexpr int kSpanMax = 2048;  // padded columns held in shared memory per block (forward)

struct Chunking {
    int cw;       // low-res columns per block
    int nchunks;  // blocks per low-res row
    int span;     // padded columns per block: (cw - 1) * s + ntaps
};

inline Chunking chunking(const downsample_loss_kernel_params& p) {
    Chunking c;
    c.cw = (kSpanMax - p.ntaps) / p.factor + 1;
    if (c.cw < 1) c.cw = 1;
    if (c.cw > p.w) c.cw = p.w;
    c.nchunks = (p.w + c.cw - 1) / c.cw;
    c.span = (c.cw - 1) * p.factor + p.ntaps;
    return c;
}

template <class A> inline size_t forward_smem(const downsample_loss_kernel_params& p, const Chunking& c) {
    return (static_cast<size_t>(p.ntaps) + c.span) * sizeof(A) + static_cast<size_t>(p.ntaps) * sizeof(int);
}

template <class T, class A>
__global__ void __launch_bounds__(kThreads) downsample_diff_kernel(downsample_loss_kernel_params p, Chunking ck, A* diff) {
    RLSE_DYNAMIC_SMEM(smem_raw);
    A* ks = reinterpret_cast<A*>(smem_raw);        // [ntaps] taps
    A* sv = ks + p.ntaps;                           // [span] vertical pass of the chunk
    int* rowoff = reinterpret_cast<int*>(sv + ck.span);  // [ntaps] reflected row offsets

    const T* __restrict__ y = static_cast<const T*>(p.y);
    const A* __restrict__ x = static_cast<const A*>(p.x);
    const A* __restrict__ taps = static_cast<const A*>(p.taps);
    const int s = p.factor, ntaps = p.ntaps, tid = threadIdx.x;

    const int64_t blk = blockIdx.x;
    const int chunk = static_cast<int>(blk % ck.nchunks);
    const int i = static_cast<int>((blk / ck.nchunks) % p.h);
    const int64_t plane = blk / (static_cast<int64_t>(ck.nchunks) * p.h);
    const int j0 = chunk * ck.cw;
    const int cw = min(ck.cw, p.w - j0);
    const int span = (cw - 1) * s + ntaps;

    for (int t = tid; t < ntaps; t += kThreads) {
        ks[t] = taps[t];
        rowoff[t] = reflect(i * s + t - p.pad0, p.H) * p.W;
    }
    __syncthreads();

    const T* __restrict__ yp = y + plane * p.H * p.W;
    for (int q = tid; q < span; q += kThreads) {
        const int X = reflect(j0 * s + q - p.pad0, p.W);
        A acc = 0;
#pragma unroll 4
        for (int t = 0; t < ntaps; t++) acc += ks[t] * to_acc(yp[rowoff[t] + X]);
        sv[q] = acc;
    }
    __syncthreads();

    const int64_t out0 = (plane * p.h + i) * p.w + j0;
    if (ntaps >= 32) {
        const int warp = tid / 32, lane = tid % 32;
        for (int jj = warp; jj < cw; jj += kThreads / 32) {
            A acc = 0;
            for (int u = lane; u < ntaps; u += 32) acc += ks[u] * sv[jj * s + u];
            acc = warp_sum(acc);
            if (lane == 0) diff[out0 + jj] = acc - x[out0 + jj];
        }
    } else {
        for (int jj = tid; jj < cw; jj += kThreads) {
            A acc = 0;
            for (int u = 0; u < ntaps; u++) acc += ks[u] * sv[jj * s + u];
            diff[out0 + jj] = acc - x[out0 + jj];
        }
    }
}

template <class A>
__global__ void __launch_bounds__(kThreads) sum_squares_kernel(const A* __restrict__ diff, A* __restrict__ loss, int64_t per_sample) {
    __shared__ A red[kThreads / 32];
    const A* d = diff + static_cast<int64_t>(blockIdx.x) * per_sample;
    A acc = 0;
    for (int64_t k = threadIdx.x; k < per_sample; k += kThreads) acc += d[k] * d[k];
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) loss[blockIdx.x] = acc;
}

// The reflection images of pixel Y (0 <= Y < n) inside the padded range [-pad0, n - 1 + pad1].
__device__ __forceinline__ bool reflection(int c, int Y, int n, int pad0, int pad1, int& q) {
    if (c == 0) { q = Y; return true; }
    if (c == 1) { q = -Y; return Y >= 1 && Y <= pad0; }
    q = 2 * (n - 1) - Y;
    return Y <= n - 2 && Y >= n - 1 - pad1;
}

// One axis of the transposed FIR: f(i, k) for every low-res index i (< nlow) whose window covers
// full-res index Y (< n) through one of its reflection images, with the tap k that joins them.
template <class A, class F>
__device__ __forceinline__ void for_each_cover(int Y, int n, int nlow, int s, int ntaps, int pad0, int pad1,
                                               const A* ks, F&& f) {
    for (int c = 0; c < 3; c++) {
        int q;
        if (!reflection(c, Y, n, pad0, pad1, q)) continue;
        const int a = q + pad0;  // >= 0
        const int lo = max(floor_div(a - ntaps + s, s), 0), hi = min(a / s, nlow - 1);
        for (int i = lo; i <= hi; i++) f(i, ks[a - i * s]);
    }
}

constexpr int kRowMax = 2048;  // low-res columns a backward block keeps in shared memory

// A block per (plane, full-res row Y). The vertical half of the transpose is the same for the whole
// row: gv[j] = sum_i k(Y, i) * diff[i, j] goes to shared memory once (a few rows of diff, read
// coalesced), then each thread takes columns X and sums the few gv[j] that cover them. A wider
// low-res row than kRowMax computes gv[j] where it is needed instead.
template <class T, class A>
__global__ void __launch_bounds__(kThreads) downsample_loss_backward_kernel(downsample_loss_kernel_params p) {
    RLSE_DYNAMIC_SMEM(smem_raw);
    A* ks = reinterpret_cast<A*>(smem_raw);  // [ntaps]
    A* gv = ks + p.ntaps;                    // [w] when in_smem
    const A* __restrict__ taps = static_cast<const A*>(p.taps);
    const A* __restrict__ diff = static_cast<const A*>(p.diff);
    const A* __restrict__ gloss = static_cast<const A*>(p.gloss);
    const int s = p.factor, ntaps = p.ntaps, pad0 = p.pad0, pad1 = p.ntaps - p.factor - p.pad0;
    const bool in_smem = p.w <= kRowMax;

    const int64_t blk = blockIdx.x;
    const int Y = static_cast<int>(blk % p.H);
    const int64_t plane = blk / p.H;
    const A* __restrict__ dp = diff + plane * p.h * p.w;
    T* __restrict__ out = static_cast<T*>(p.dy) + (plane * p.H + Y) * p.W;
    const A g = A(2) * gloss[plane / p.channels];

    for (int t = threadIdx.x; t < ntaps; t += kThreads) ks[t] = taps[t];
    __syncthreads();
    auto vertical = [&](int j) {
        A acc = 0;
        for_each_cover(Y, p.H, p.h, s, ntaps, pad0, pad1, ks, [&](int i, A k) { acc += k * dp[static_cast<int64_t>(i) * p.w + j]; });
        return acc;
    };
    if (in_smem) {
        for (int j = threadIdx.x; j < p.w; j += kThreads) gv[j] = vertical(j);
        __syncthreads();
    }
    for (int X = threadIdx.x; X < p.W; X += kThreads) {
        A acc = 0;
        for_each_cover(X, p.W, p.w, s, ntaps, pad0, pad1, ks, [&](int j, A k) { acc += k * (in_smem ? gv[j] : vertical(j)); });
        out[X] = from_acc<T>(acc * g);
    }
}

}  // namespace

template <class T>
void downsample_loss_cuda(const downsample_loss_kernel_params& p, void* stream) {
    using D = typename DeviceType<T>::type;
    using A = typename AccType<T>::type;
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    if (p.batch <= 0) return;
    const int64_t per_sample = static_cast<int64_t>(p.channels) * p.h * p.w;
    if (per_sample <= 0) {
        cudaMemsetAsync(p.loss, 0, sizeof(A) * p.batch, st);
        return;
    }
    const Chunking ck = chunking(p);
    const size_t smem = forward_smem<A>(p, ck);
    if (smem > 48 * 1024) throw std::invalid_argument("downsample_loss_cuda: the filter is too long for shared memory (factor too large)");
    const int64_t blocks = static_cast<int64_t>(p.batch) * p.channels * p.h * ck.nchunks;
    if (blocks >= (int64_t(1) << 31)) throw std::invalid_argument("downsample_loss_cuda: too many planes for one launch");

    A* diff = static_cast<A*>(p.diff);
    const bool own = diff == nullptr;  // the caller needs no diff: use a stream-ordered scratch buffer
    if (own && cudaMallocAsync(reinterpret_cast<void**>(&diff), sizeof(A) * p.batch * per_sample, st) != cudaSuccess)
        throw std::runtime_error("downsample_loss_cuda: cannot allocate the diff buffer");
    auto* diff_kernel = &downsample_diff_kernel<D, A>;
    auto* sum_kernel = &sum_squares_kernel<A>;
    RLSE_LAUNCH(diff_kernel, static_cast<unsigned int>(blocks), kThreads, smem, st, p, ck, diff);
    RLSE_LAUNCH(sum_kernel, static_cast<unsigned int>(p.batch), kThreads, 0, st, diff, static_cast<A*>(p.loss), per_sample);
    if (own) cudaFreeAsync(diff, st);
}

template <class T>
void downsample_loss_backward_cuda(const downsample_loss_kernel_params& p, void* stream) {
    using D = typename DeviceType<T>::type;
    using A = typename AccType<T>::type;
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    const int64_t rows = static_cast<int64_t>(p.batch) * p.channels * p.H;
    if (rows <= 0 || p.W <= 0) return;
    if (rows >= (int64_t(1) << 31)) throw std::invalid_argument("downsample_loss_backward_cuda: too many rows for one launch");
    const size_t smem = sizeof(A) * (static_cast<size_t>(p.ntaps) + (p.w <= kRowMax ? p.w : 0));
    if (smem > 48 * 1024) throw std::invalid_argument("downsample_loss_backward_cuda: the filter is too long for shared memory");
    auto* kernel = &downsample_loss_backward_kernel<D, A>;
    RLSE_LAUNCH(kernel, static_cast<unsigned int>(rows), kThreads, smem, st, p);
}

#define RLSE_INSTANTIATE(T) \
    template void downsample_loss_cuda<T>(const downsample_loss_kernel_params&, void*); \
    template void downsample_loss_backward_cuda<T>(const downsample_loss_kernel_params&, void*);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE
