// Device helpers shared by the CUDA kernels: storage <-> accumulation type conversion, c10 storage
// types mapped to CUDA's, reductions, launch geometry. Light on purpose: only CUDA headers and the
// two c10 scalar headers (no ATen / torch/extension.h, which cost ~30 s of nvcc time per file).
//
// With RLSE_CUDA_EMULATION defined, a host C++ compiler builds the same kernel sources against
// emulation/emu.h (threads for CUDA threads, one block at a time), so that tests run the kernels'
// logic on a machine without a GPU. Hence launches go through RLSE_LAUNCH and dynamic shared
// memory through RLSE_DYNAMIC_SMEM.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../common/kernel_dtypes.h"

#include <cstdint>

#ifdef RLSE_CUDA_EMULATION
#include "emulation/emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// `kernel` must be a single token (a function pointer for template kernels).
#define RLSE_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define RLSE_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace rlse_cuda {

// The launchers are templated on the c10 storage types (so the bindings can dispatch on the tensor
// dtype); the kernels use CUDA's own types, which have the same layout and device intrinsics.
template <class T> struct DeviceType { using type = T; };
template <> struct DeviceType<c10::Half> { using type = __half; };
template <> struct DeviceType<c10::BFloat16> { using type = __nv_bfloat16; };

// Accumulation type: fp32 for every storage type except double.
template <class T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };
template <> struct AccType<c10::Half> { using type = float; };
template <> struct AccType<c10::BFloat16> { using type = float; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> struct Store;
template <> struct Store<float> { __device__ __forceinline__ static float from(float v) { return v; } };
template <> struct Store<double> { __device__ __forceinline__ static double from(double v) { return v; } };
template <> struct Store<__half> { __device__ __forceinline__ static __half from(float v) { return __float2half_rn(v); } };
template <> struct Store<__nv_bfloat16> {
    __device__ __forceinline__ static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
};

template <class T, class A> __device__ __forceinline__ T from_acc(A v) { return Store<T>::from(v); }

// Floor division and non-negative remainder for b > 0 (C++ '/' truncates towards zero).
__device__ __forceinline__ int floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }
__device__ __forceinline__ int pos_mod(int a, int b) { const int r = a % b; return r < 0 ? r + b : r; }

// PyTorch's 'reflect' padding index for q in [-(n - 1), 2 (n - 1)] (a single reflection).
__device__ __forceinline__ int reflect(int q, int n) {
    q = (q < 0) ? -q : q;
    return (q > n - 1) ? 2 * (n - 1) - q : q;
}

template <class A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;  // complete in lane 0
}

// Sum over the block (blockDim.x a multiple of 32); `red` holds blockDim.x / 32 values. The result
// is valid in thread 0. Every thread must call it (it has barriers); safe to call again at once.
template <class A> __device__ __forceinline__ A block_sum(A v, A* red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // a previous call may still be reading `red`
    if (lane == 0) red[warp] = v;
    __syncthreads();
    A r = A(0);
    if (warp == 0) {
        r = lane < nwarps ? red[lane] : A(0);
        r = warp_sum(r);
    }
    return r;
}

// Whether a kernel with 32- and 64-bit index instances may take the 32-bit one: `bound`, the
// largest index it forms, stays below 2^31 (64-bit division is many times slower). The emulation
// build can force the 64-bit instances so that its tests run them too.
inline bool use_index32(int64_t bound) {
#ifdef RLSE_CUDA_EMULATION
    if (emu_force_index64()) return false;
#endif
    return bound < (int64_t(1) << 31);
}

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never over the x limit.
inline unsigned int grid_for(int64_t n, int threads, int64_t max_blocks = 65536 * 4) {
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks < 1) blocks = 1;
    if (blocks > max_blocks) blocks = max_blocks;
    return static_cast<unsigned int>(blocks);
}

}  // namespace rlse_cuda
