// Host emulation of the small CUDA subset that csrc/cuda/*.cu use, for tests on machines without a
// GPU (tests/test_ops_cuda.py builds the kernel sources with g++ -DRLSE_CUDA_EMULATION). Not a
// performance path: the CUDA threads of a block are fibers of one OS thread, blocks run one by one.
//
// What it checks beyond the arithmetic: __syncthreads / __shfl_down_sync are real barriers (a
// barrier that not every thread reaches aborts with a message), dynamic shared memory starts as NaN
// bytes (a read before a write poisons the result), and __shared__ arrays keep the previous block's
// data.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <ucontext.h>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

// Tests: makes use_index32 (cuda_common.cuh) pick the 64-bit index instances of the kernels that
// have both, which no test-sized tensor would reach (they start at 2^31 elements).
inline bool& emu_force_index64() {
    static bool force = false;
    return force;
}

using std::max;  // CUDA's device min/max overloads
using std::min;

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned int x, y, z;
};

using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) {
    *p = std::malloc(n);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
    std::free(p);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
    std::memset(p, v, n);
    return cudaSuccess;
}

using __half = c10::Half;
using __nv_bfloat16 = c10::BFloat16;
inline float __half2float(__half v) { return static_cast<float>(v); }
inline float __bfloat162float(__nv_bfloat16 v) { return static_cast<float>(v); }
inline __half __float2half_rn(float v) { return __half(v); }                 // round to nearest even
inline __nv_bfloat16 __float2bfloat16_rn(float v) { return __nv_bfloat16(v); }  // round to nearest even

namespace rlse_emu {

// The CUDA threads of a block are fibers (ucontext) run by one OS thread: a barrier parks the
// fiber; the last arrival releases the others. If no fiber can run and some have not finished, a
// barrier was not reached by every thread (divergence): report and abort.
enum State { kReady, kBlockBarrier, kWarpBarrier, kDone };

struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    State state = kReady;
};

constexpr size_t kStackBytes = 128 * 1024;

// Fiber stacks, allocated once and reused by every launch (uninitialised: no page is touched until
// a fiber uses it).
inline char* fiber_stack(int t) {
    static std::vector<std::unique_ptr<char[]>> stacks;
    while (static_cast<int>(stacks.size()) <= t) stacks.emplace_back(new char[kStackBytes]);
    return stacks[t].get();
}

struct Block {
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    std::vector<int> warp_arrived;
    int block_arrived = 0;
    int current = 0;
    std::vector<unsigned char> exchange;  // 8 bytes per thread for warp shuffles
    unsigned char* dyn = nullptr;         // dynamic shared memory
    void (*body)(void*) = nullptr;        // runs the kernel for the current fiber
    void* body_arg = nullptr;
};

inline Block* g_block = nullptr;

[[noreturn]] inline void die(const char* what) {
    std::fprintf(stderr, "rlse_emu: %s\n", what);
    std::abort();
}

inline void park(State s) {
    Block* b = g_block;
    b->fibers[b->current].state = s;
    swapcontext(&b->fibers[b->current].ctx, &b->scheduler);
}

inline void block_barrier() {
    Block* b = g_block;
    if (++b->block_arrived == static_cast<int>(b->fibers.size())) {
        b->block_arrived = 0;
        for (Fiber& f : b->fibers)
            if (f.state == kBlockBarrier) f.state = kReady;
        return;  // the last arrival goes on
    }
    park(kBlockBarrier);
}

inline void warp_barrier(int warp) {
    Block* b = g_block;
    if (++b->warp_arrived[warp] == 32) {
        b->warp_arrived[warp] = 0;
        for (int t = warp * 32; t < warp * 32 + 32; t++)
            if (b->fibers[t].state == kWarpBarrier) b->fibers[t].state = kReady;
        return;
    }
    park(kWarpBarrier);
}

}  // namespace rlse_emu

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline void __syncthreads() { rlse_emu::block_barrier(); }

template <class T>
T __shfl_down_sync(unsigned int /*mask: full warps only*/, T v, int delta) {
    static_assert(sizeof(T) <= 8, "shuffle of a type over 8 bytes");
    rlse_emu::Block* b = rlse_emu::g_block;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* slots = b->exchange.data() + static_cast<size_t>(warp) * 32 * 8;
    std::memcpy(slots + lane * 8, &v, sizeof(T));
    rlse_emu::warp_barrier(warp);
    T r = v;
    if (lane + delta < 32) std::memcpy(&r, slots + (lane + delta) * 8, sizeof(T));
    rlse_emu::warp_barrier(warp);
    return r;
}

#define RLSE_DYNAMIC_SMEM(name) unsigned char* name = rlse_emu::g_block->dyn
#define RLSE_LAUNCH(kernel, grid, block, smem, stream, ...) \
    (static_cast<void>(stream), rlse_emu::launch(kernel, dim3(grid), dim3(block), (smem), __VA_ARGS__))

namespace rlse_emu {

template <class F>
void trampoline_call(void* f) { (*static_cast<F*>(f))(); }

inline void fiber_entry() {
    Block* b = g_block;
    b->body(b->body_arg);
    b->fibers[b->current].state = kDone;
    swapcontext(&b->fibers[b->current].ctx, &b->scheduler);
}

template <class... P, class... Args>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, Args... args) {
    if (block.y != 1 || block.z != 1 || block.x % 32 != 0 || block.x > 1024)
        throw std::invalid_argument("rlse_emu: blocks must be 1-D with a multiple of 32 threads, at most 1024");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) throw std::invalid_argument("rlse_emu: empty grid");
    if (grid.y > 65535 || grid.z > 65535) throw std::invalid_argument("rlse_emu: gridDim.y/z over 65535");
    if (smem > 48 * 1024) throw std::invalid_argument("rlse_emu: over 48 KiB of dynamic shared memory");
    const int threads = static_cast<int>(block.x);
    std::vector<double> dyn_storage(smem / sizeof(double) + 2);

    Block blk;
    blk.fibers.resize(threads);
    blk.warp_arrived.assign(threads / 32, 0);
    blk.exchange.resize(static_cast<size_t>(threads) * 8);
    blk.dyn = reinterpret_cast<unsigned char*>(dyn_storage.data());
    auto body = [&] { kernel(args...); };
    blk.body = &trampoline_call<decltype(body)>;
    blk.body_arg = &body;
    for (int t = 0; t < threads; t++) blk.fibers[t].stack = fiber_stack(t);
    g_block = &blk;
    blockDim = block;
    gridDim = grid;

    for (unsigned int bz = 0; bz < grid.z; bz++)
        for (unsigned int by = 0; by < grid.y; by++)
            for (unsigned int bx = 0; bx < grid.x; bx++) {
                blockIdx = uint3{bx, by, bz};
                std::memset(blk.dyn, 0xff, smem);  // NaN in every float type
                for (Fiber& f : blk.fibers) {
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack;
                    f.ctx.uc_stack.ss_size = kStackBytes;
                    f.ctx.uc_link = nullptr;
                    makecontext(&f.ctx, fiber_entry, 0);
                    f.state = kReady;
                }
                int done = 0;
                while (done < threads) {
                    bool ran = false;
                    for (int t = 0; t < threads; t++) {
                        if (blk.fibers[t].state != kReady) continue;
                        blk.current = t;
                        threadIdx = uint3{static_cast<unsigned int>(t), 0, 0};
                        swapcontext(&blk.scheduler, &blk.fibers[t].ctx);
                        ran = true;
                        if (blk.fibers[t].state == kDone) done++;
                    }
                    if (!ran && done < threads)
                        die("deadlock: a __syncthreads or warp shuffle was not reached by every thread of the block");
                }
            }
    g_block = nullptr;
}

}  // namespace rlse_emu
