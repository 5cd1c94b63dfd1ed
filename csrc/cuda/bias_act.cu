// CUDA kernels of bias_act (forward and first-order gradient, optionally with the bias gradient
// fused), the contract of csrc/common/bias_act.h. Templated on (storage type, activation); math in
// fp32 for half/bf16/float, fp64 for double. Grid-stride loops, so any sizeX fits the grid limits.
#include "../common/bias_act.h"
#include "cuda_common.cuh"

#include <cstdint>

namespace {

using namespace rlse_cuda;

constexpr int kThreads = 256;

// y = clamp(act(v + bias) * gain). 'v < 0 ? .. : v' keeps NaN like F.relu / F.leaky_relu.
template <int ACT, class A>
__device__ __forceinline__ A forward_value(A v, A bias, A alpha, A gain, A clamp, bool clamp_on) {
    v += bias;
    if (ACT == kBiasActRelu) v = v < A(0) ? A(0) : v;
    if (ACT == kBiasActLrelu) v = v < A(0) ? v * alpha : v;
    v *= gain;
    if (clamp_on) v = v > clamp ? clamp : (v < -clamp ? -clamp : v);
    return v;
}

// dx for upstream dy. pre: the pre-activation value (xref + b), or a value of the same sign
// (yref * gain, valid for alpha >= 0). With the clamp, xref is given (the bindings check it): the
// unclamped output is recomputed; torch.clamp passes the gradient at the bounds, and x (not the
// rounded y) keeps fp16/bf16 masks exact.
template <int ACT, class A>
__device__ __forceinline__ A grad_value(A dy, A pre, A alpha, A gain, A clamp, bool clamp_on) {
    A v = dy;
    if (ACT == kBiasActRelu) v = pre > A(0) ? v : A(0);
    if (ACT == kBiasActLrelu) v = pre > A(0) ? v : v * alpha;
    v *= gain;
    if (clamp_on) {
        A z = pre;
        if (ACT == kBiasActRelu) z = z < A(0) ? A(0) : z;
        if (ACT == kBiasActLrelu) z = z < A(0) ? z * alpha : z;
        z *= gain;
        v = (z >= -clamp && z <= clamp) ? v : A(0);
    }
    return v;
}

// The pre-activation value the gradient's slope and clamp mask need: x + b from xref, else a
// value of its sign from yref (y * gain, valid for alpha >= 0). Linear needs neither.
template <int ACT, class A>
__device__ __forceinline__ A pre_value(bool from_x, A ref, A bias, A gain) {
    if (from_x) return ref + bias;
    if (ACT != kBiasActLinear) return ref * gain;
    return A(0);
}

// V consecutive elements, moved by one load or store instruction: 16 bytes for the vector
// instance, one element for the scalar one.
template <class T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };
template <class T> constexpr int kVec = 16 / sizeof(T);

// Elementwise: forward, or the gradient without db, V elements per step. I: the index type (32-bit
// when it fits). V = 1 takes any tensor. V = kVec<T> (one 16-byte load or store per 8 bf16
// elements; the scalar kernel moves 2 bytes per instruction and stays well below the memory
// bandwidth) needs 16-byte aligned pointers, sizeX a multiple of V, and the V elements of a step
// sharing their bias (stepB a multiple of V: NCHW, or a single bias value) or taking V
// consecutive ones (stepB 1: the NHWC view of a channels-last x, sizeB a multiple of V).
template <class T, class A, int ACT, class I, int V>
__global__ void __launch_bounds__(kThreads) bias_act_kernel(bias_act_kernel_params p) {
    using Vec = Pack<T, V>;
    const Vec* __restrict__ x = static_cast<const Vec*>(p.x);
    const T* __restrict__ b = static_cast<const T*>(p.b);
    const Vec* __restrict__ xref = static_cast<const Vec*>(p.xref);
    const Vec* __restrict__ yref = static_cast<const Vec*>(p.yref);
    Vec* __restrict__ y = static_cast<Vec*>(p.y);
    const A alpha = static_cast<A>(p.alpha), gain = static_cast<A>(p.gain), clamp = static_cast<A>(p.clamp);
    const bool clamp_on = p.clamp >= 0;
    const bool grad = p.grad != 0;
    // The bias matters in the forward pass and for the xref sign rule only.
    const bool use_b = b != nullptr && (!grad || xref != nullptr);
    const bool per_element = p.stepB == 1 && p.sizeB > 1;  // bias index = element index % sizeB
    const I n = static_cast<I>(p.sizeX / V);
    const I step_b = static_cast<I>(per_element || p.sizeB == 1 ? 1 : p.stepB / V);
    const I size_b = static_cast<I>(p.sizeB);
    const I stride = static_cast<I>(gridDim.x) * kThreads;

    for (I i = static_cast<I>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
        A bias = A(0);
        I first = 0;  // per_element: the bias index of the step's first element
        if (use_b && per_element) first = (i * V) % size_b;
        else if (use_b) bias = to_acc(b[(i / step_b) % size_b]);
        const Vec xv = x[i];
        Vec ref, out;
        if (grad && xref) ref = xref[i];
        else if (grad && ACT != kBiasActLinear) ref = yref[i];
#pragma unroll
        for (int k = 0; k < V; k++) {
            const A v = to_acc(xv.v[k]);
            const A bk = (use_b && per_element) ? to_acc(b[first + k]) : bias;
            A o;
            if (!grad) {
                o = forward_value<ACT>(v, bk, alpha, gain, clamp, clamp_on);
            } else {
                const A r = (xref || ACT != kBiasActLinear) ? to_acc(ref.v[k]) : A(0);
                o = grad_value<ACT>(v, pre_value<ACT>(xref != nullptr, r, bk, gain), alpha, gain, clamp, clamp_on);
            }
            out.v[k] = from_acc<T>(o);
        }
        y[i] = out;
    }
}

template <class T>
inline bool vectorizable(const bias_act_kernel_params& p) {
    constexpr int64_t V = kVec<T>;
    auto aligned = [](const void* q) { return q == nullptr || reinterpret_cast<uintptr_t>(q) % 16 == 0; };
    return p.sizeX % V == 0 && aligned(p.x) && aligned(p.y) && aligned(p.xref) && aligned(p.yref) &&
           (p.b == nullptr || p.sizeB == 1 || p.stepB % V == 0 || (p.stepB == 1 && p.sizeB % V == 0));
}

// Gradient with db fused: a block per channel c (grid-stride over channels), so that db[c] is the
// sum of the stored dx values of channel c in a fixed order (deterministic).
template <class T, class A, int ACT>
__global__ void __launch_bounds__(kThreads) bias_act_grad_db_kernel(bias_act_kernel_params p) {
    __shared__ A red[kThreads / 32];
    const T* __restrict__ dy = static_cast<const T*>(p.x);
    const T* __restrict__ b = static_cast<const T*>(p.b);
    const T* __restrict__ xref = static_cast<const T*>(p.xref);
    const T* __restrict__ yref = static_cast<const T*>(p.yref);
    T* __restrict__ dx = static_cast<T*>(p.y);
    A* __restrict__ db = static_cast<A*>(p.db);
    const A alpha = static_cast<A>(p.alpha), gain = static_cast<A>(p.gain), clamp = static_cast<A>(p.clamp);
    const bool clamp_on = p.clamp >= 0;
    const int64_t outer = p.sizeX / (p.sizeB * p.stepB);

    for (int64_t c = blockIdx.x; c < p.sizeB; c += gridDim.x) {  // uniform over the block
        const A bias = (xref && b) ? to_acc(b[c]) : A(0);
        A acc = 0;
        for (int64_t o = 0; o < outer; o++) {
            const int64_t base = (o * p.sizeB + c) * p.stepB;
            for (int64_t j = threadIdx.x; j < p.stepB; j += kThreads) {
                const int64_t i = base + j;
                const A r = xref ? to_acc(xref[i]) : (ACT != kBiasActLinear ? to_acc(yref[i]) : A(0));
                const T out = from_acc<T>(
                    grad_value<ACT>(to_acc(dy[i]), pre_value<ACT>(xref != nullptr, r, bias, gain), alpha, gain, clamp, clamp_on));
                dx[i] = out;
                acc += to_acc(out);
            }
        }
        acc = block_sum(acc, red);
        if (threadIdx.x == 0) db[c] = acc;
    }
}

template <class T, class A, int ACT>
void launch_act(const bias_act_kernel_params& p, cudaStream_t stream) {
    if (p.sizeX <= 0) return;
    if (p.grad && p.db != nullptr) {
        const int64_t channels = p.sizeB < (int64_t(1) << 30) ? p.sizeB : (int64_t(1) << 30);
        auto* kernel = &bias_act_grad_db_kernel<T, A, ACT>;
        RLSE_LAUNCH(kernel, static_cast<unsigned int>(channels), kThreads, 0, stream, p);
        return;
    }
    const bool vec = vectorizable<T>(p);
    const int64_t per_item = vec ? kVec<T> : 1;  // elements per loop step
    const int64_t items = p.sizeX / per_item;
    const unsigned int blocks = grid_for(items, kThreads);
    // 32-bit index math when the whole loop (including the last stride, and the element index
    // i * V of the vector kernel) fits.
    const bool narrow = use_index32(p.sizeX + static_cast<int64_t>(blocks) * kThreads * per_item);
    auto* kernel = vec ? (narrow ? &bias_act_kernel<T, A, ACT, int32_t, kVec<T>> : &bias_act_kernel<T, A, ACT, int64_t, kVec<T>>)
                       : (narrow ? &bias_act_kernel<T, A, ACT, int32_t, 1> : &bias_act_kernel<T, A, ACT, int64_t, 1>);
    RLSE_LAUNCH(kernel, blocks, kThreads, 0, stream, p);
}

}  // namespace

template <class T>
void bias_act_cuda(const bias_act_kernel_params& p, void* stream) {
    using D = typename DeviceType<T>::type;
    using A = typename AccType<T>::type;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (p.act) {
        case kBiasActRelu: launch_act<D, A, kBiasActRelu>(p, s); break;
        case kBiasActLrelu: launch_act<D, A, kBiasActLrelu>(p, s); break;
        default: launch_act<D, A, kBiasActLinear>(p, s); break;
    }
}

#define RLSE_INSTANTIATE(T) \
    template void bias_act_cuda<T>(const bias_act_kernel_params&, void*);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE
