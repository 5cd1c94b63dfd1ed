// CUDA kernels of upfirdn2d, the contract of csrc/common/upfirdn2d.h.
//
// - `tiled`: shared-memory tiling for the StyleGAN2 cases: pure FIR (up = down = 1, filter up to
//   8x8), upsample by 2 and downsample by 2 (filter up to 4x4). A block loads the input region of a
//   TW x TH output tile (zero outside the image) and the flipped, gain-scaled filter (zero-padded
//   to FW x FH) into shared memory, then computes the tile; a separable (1-D) filter runs as a
//   horizontal pass into shared memory followed by a vertical pass.
// - `general`: one thread per output pixel, reading global memory; any up/down/padding/filter. Its
//   NHWC instance serves channels-last tensors (channels fastest, so a warp reads and writes
//   consecutive channels), where cuDNN's convolutions want them.
//
// Index algebra (both kernels): output ox reads the zero-inserted signal at u = ox * down - pad0 + k
// for taps k in [0, fw); only u % up == 0 are non-zero, at input u / up. The first such tap is
// k0 = pos_mod(-(ox * down - pad0), up), at input (ox * down - pad0 + k0) / up (an exact division).
#include "../common/upfirdn2d.h"
#include "cuda_common.cuh"

#include <algorithm>
#include <stdexcept>

namespace {

using namespace rlse_cuda;

constexpr int kThreads = 256;

// Filter tap k (in correlation order) of a filter with n taps: a true convolution flips it.
__device__ __forceinline__ int ftap(int k, int n, int flip) { return flip ? k : n - 1 - k; }

// NHWC: idx runs over [N, outH, outW, C] (channel fastest) and the input pixel stride is C.
// I: the index type, 32-bit when input, output and the last grid stride fit (64-bit division is
// many times slower, and this kernel divides three times per output).
template <class T, class A, bool NHWC, class I>
__global__ void __launch_bounds__(kThreads) upfirdn2d_general(upfirdn2d_kernel_params p) {
    const T* __restrict__ x = static_cast<const T*>(p.x);
    const A* __restrict__ f = static_cast<const A*>(p.f);
    T* __restrict__ y = static_cast<T*>(p.y);
    const A gain = static_cast<A>(p.gain);
    const I total = static_cast<I>(p.major * p.outH * p.outW);
    const I stride = static_cast<I>(gridDim.x) * kThreads;
    const I channels = static_cast<I>(NHWC ? p.channels : 1);
    const I out_w = static_cast<I>(p.outW), out_h = static_cast<I>(p.outH);
    const I in_plane = static_cast<I>(p.inH) * static_cast<I>(p.inW);
    const I step = channels;  // between neighbouring pixels of one channel (1 for NCHW)

    for (I idx = static_cast<I>(blockIdx.x) * kThreads + threadIdx.x; idx < total; idx += stride) {
        const I pix = NHWC ? idx / channels : idx;
        const int ox = static_cast<int>(pix % out_w);
        const I rows = pix / out_w;
        const int oy = static_cast<int>(rows % out_h);
        const I plane = rows / out_h;  // NCHW: n * C + c; NHWC: n
        const T* __restrict__ xp = NHWC ? x + plane * in_plane * channels + (idx - pix * channels)
                                        : x + plane * in_plane;

        const int ux = ox * p.downx - p.padx0, uy = oy * p.downy - p.pady0;
        const int kx0 = pos_mod(-ux, p.upx), ky0 = pos_mod(-uy, p.upy);
        const int ix0 = (ux + kx0) / p.upx, iy0 = (uy + ky0) / p.upy;

        A acc = 0;
        int iy = iy0;
        for (int ky = ky0; ky < p.filterH; ky += p.upy, iy++) {
            if (iy < 0) continue;
            if (iy >= p.inH) break;
            const int fy = ftap(ky, p.filterH, p.flip);
            const A wy = p.separable ? f[fy] : A(1);
            int ix = ix0;
            for (int kx = kx0; kx < p.filterW; kx += p.upx, ix++) {
                if (ix < 0) continue;
                if (ix >= p.inW) break;
                const int fx = ftap(kx, p.filterW, p.flip);
                const A w = p.separable ? wy * f[fx] : f[fy * p.filterW + fx];
                acc += w * to_acc(xp[(static_cast<I>(iy) * p.inW + ix) * step]);
            }
        }
        y[idx] = from_acc<T>(acc * gain);
    }
}

// UP/DOWN: factors (same along x and y); FW x FH: the largest filter; TW x TH: output tile.
template <class T, class A, int UP, int DOWN, int FW, int FH, int TW, int TH, bool SEP>
__global__ void __launch_bounds__(kThreads) upfirdn2d_tiled(upfirdn2d_kernel_params p) {
    // Input tile: ix in [ix_base, ix_base + TIW) covers every tap of the tile's outputs (the +2 is
    // one for the floor of the base and one for the count).
    constexpr int TIW = ((TW - 1) * DOWN + FW - 1) / UP + 2;
    constexpr int TIH = ((TH - 1) * DOWN + FH - 1) / UP + 2;
    __shared__ A sf[SEP ? FW + FH : FW * FH];     // filter in correlation order, gain applied
    __shared__ A sx[TIH][TIW];                     // input tile
    __shared__ A sh[SEP ? TIH : 1][SEP ? TW : 1];  // separable: after the horizontal pass

    const T* __restrict__ x = static_cast<const T*>(p.x);
    const A* __restrict__ f = static_cast<const A*>(p.f);
    T* __restrict__ y = static_cast<T*>(p.y);
    const A gain = static_cast<A>(p.gain);
    const int fw = p.filterW, fh = p.filterH;
    const int tid = threadIdx.x;

    if (SEP) {
        for (int k = tid; k < FW + FH; k += kThreads) {
            A v = 0;
            if (k < FW) {
                if (k < fw) v = f[ftap(k, fw, p.flip)];
            } else if (k - FW < fh) {
                v = f[ftap(k - FW, fh, p.flip)] * gain;
            }
            sf[k] = v;
        }
    } else {
        for (int k = tid; k < FW * FH; k += kThreads) {
            const int ky = k / FW, kx = k % FW;
            sf[k] = (ky < fh && kx < fw) ? f[ftap(ky, fh, p.flip) * fw + ftap(kx, fw, p.flip)] * gain : A(0);
        }
    }

    const int tiles_x = (p.outW + TW - 1) / TW;
    const int tiles_y = (p.outH + TH - 1) / TH;
    const int64_t tiles = static_cast<int64_t>(tiles_x) * tiles_y;

    // Loop bounds are uniform over the block, so every thread reaches every __syncthreads.
    for (int64_t m = blockIdx.y; m < p.major; m += gridDim.y) {
        const T* __restrict__ xp = x + m * p.inH * p.inW;
        T* __restrict__ yp = y + m * p.outH * p.outW;
        for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
            const int ox0 = static_cast<int>(tile % tiles_x) * TW;
            const int oy0 = static_cast<int>(tile / tiles_x) * TH;
            const int ix_base = floor_div(ox0 * DOWN - p.padx0, UP);
            const int iy_base = floor_div(oy0 * DOWN - p.pady0, UP);

            __syncthreads();  // the filter is in place; the previous tile is done with sx / sh
            for (int k = tid; k < TIH * TIW; k += kThreads) {
                const int ry = k / TIW, rx = k % TIW;
                const int iy = iy_base + ry, ix = ix_base + rx;
                A v = 0;
                if (iy >= 0 && iy < p.inH && ix >= 0 && ix < p.inW) v = to_acc(xp[static_cast<int64_t>(iy) * p.inW + ix]);
                sx[ry][rx] = v;
            }
            __syncthreads();

            if (SEP) {
                for (int k = tid; k < TIH * TW; k += kThreads) {
                    const int r = k / TW, c = k % TW;
                    const int u = (ox0 + c) * DOWN - p.padx0;
                    const int k0 = pos_mod(-u, UP);
                    int s = (u + k0) / UP - ix_base;
                    A acc = 0;
#pragma unroll
                    for (int kx = k0; kx < FW; kx += UP, s++) acc += sf[kx] * sx[r][s];
                    sh[r][c] = acc;
                }
                __syncthreads();
                for (int k = tid; k < TH * TW; k += kThreads) {
                    const int r = k / TW, c = k % TW;
                    const int oy = oy0 + r, ox = ox0 + c;
                    if (oy >= p.outH || ox >= p.outW) continue;
                    const int u = oy * DOWN - p.pady0;
                    const int k0 = pos_mod(-u, UP);
                    int s = (u + k0) / UP - iy_base;
                    A acc = 0;
#pragma unroll
                    for (int ky = k0; ky < FH; ky += UP, s++) acc += sf[FW + ky] * sh[s][c];
                    yp[static_cast<int64_t>(oy) * p.outW + ox] = from_acc<T>(acc);
                }
            } else {
                for (int k = tid; k < TH * TW; k += kThreads) {
                    const int r = k / TW, c = k % TW;
                    const int oy = oy0 + r, ox = ox0 + c;
                    if (oy >= p.outH || ox >= p.outW) continue;
                    const int ux = ox * DOWN - p.padx0, uy = oy * DOWN - p.pady0;
                    const int kx0 = pos_mod(-ux, UP), ky0 = pos_mod(-uy, UP);
                    const int sx0 = (ux + kx0) / UP - ix_base;
                    int sy = (uy + ky0) / UP - iy_base;
                    A acc = 0;
                    // Runtime bounds: a 4x4 filter in the 8x8 variant costs 16 taps, not 64.
                    for (int ky = ky0; ky < fh; ky += UP, sy++) {
                        int s = sx0;
                        for (int kx = kx0; kx < fw; kx += UP, s++) acc += sf[ky * FW + kx] * sx[sy][s];
                    }
                    yp[static_cast<int64_t>(oy) * p.outW + ox] = from_acc<T>(acc);
                }
            }
        }
    }
}

template <class T, class A, int UP, int DOWN, int FW, int FH, int TW, int TH>
void launch_tiled(const upfirdn2d_kernel_params& p, cudaStream_t stream) {
    const int64_t tiles = static_cast<int64_t>((p.outW + TW - 1) / TW) * ((p.outH + TH - 1) / TH);
    const int64_t gx = tiles < (int64_t(1) << 30) ? tiles : (int64_t(1) << 30);
    const int64_t gy = p.major < 65535 ? p.major : 65535;  // gridDim.y limit; the kernel loops over the rest
    dim3 grid(static_cast<unsigned int>(gx), static_cast<unsigned int>(gy));
    auto* kernel = p.separable ? &upfirdn2d_tiled<T, A, UP, DOWN, FW, FH, TW, TH, true>
                               : &upfirdn2d_tiled<T, A, UP, DOWN, FW, FH, TW, TH, false>;
    RLSE_LAUNCH(kernel, grid, kThreads, 0, stream, p);
}

template <class T, class A, bool NHWC>
void launch_general(const upfirdn2d_kernel_params& p, cudaStream_t stream) {
    const int64_t total = p.major * p.outH * p.outW;
    const int64_t input = p.major * p.inH * p.inW;
    const unsigned int blocks = grid_for(total, kThreads);
    const bool narrow = use_index32(std::max(total + static_cast<int64_t>(blocks) * kThreads, input));
    auto* kernel = narrow ? &upfirdn2d_general<T, A, NHWC, int32_t> : &upfirdn2d_general<T, A, NHWC, int64_t>;
    RLSE_LAUNCH(kernel, blocks, kThreads, 0, stream, p);
}

}  // namespace

template <class T>
void upfirdn2d_cuda(const upfirdn2d_kernel_params& p, void* stream) {
    using D = typename DeviceType<T>::type;
    using A = typename AccType<T>::type;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (p.major <= 0 || p.outH <= 0 || p.outW <= 0) return;
    if (p.separable && p.filterW != p.filterH) throw std::invalid_argument("upfirdn2d_cuda: a separable filter needs filterW == filterH");

    if (p.channels > 0) {
        launch_general<D, A, true>(p, s);
        return;
    }
    const bool iso = p.upx == p.upy && p.downx == p.downy;
    const bool fits4 = p.filterW <= 4 && p.filterH <= 4;
    const bool fits8 = p.filterW <= 8 && p.filterH <= 8;
    if (iso && p.upx == 1 && p.downx == 1 && fits4) {
        // StyleGAN2's 4-tap FIR (G after each up-convolution, D before each down-convolution):
        // a 36x36 input tile per 32x32 outputs, where the 8x8 variant loads 40x40 and runs a
        // separable filter over 8 taps, half of them zero.
        launch_tiled<D, A, 1, 1, 4, 4, 32, 32>(p, s);
    } else if (iso && p.upx == 1 && p.downx == 1 && fits8) {
        launch_tiled<D, A, 1, 1, 8, 8, 32, 32>(p, s);
    } else if (iso && p.upx == 2 && p.downx == 1 && fits4) {
        launch_tiled<D, A, 2, 1, 4, 4, 32, 32>(p, s);
    } else if (iso && p.upx == 1 && p.downx == 2 && fits4) {
        launch_tiled<D, A, 1, 2, 4, 4, 32, 16>(p, s);
    } else {
        launch_general<D, A, false>(p, s);
    }
}

#define RLSE_INSTANTIATE(T) \
    template void upfirdn2d_cuda<T>(const upfirdn2d_kernel_params&, void*);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE
