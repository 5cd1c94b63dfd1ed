// Fused bias + activation + gain + clamp: kernel parameters and launchers (CPU and CUDA).
// Plain C++ so that both the CPU sources and nvcc can include it.
#pragma once
#include <cstdint>

// Activation ids, the `code` of rlse_fast/ops/bias_act.py ACTIVATIONS.
enum BiasActCode : int { kBiasActLinear = 1, kBiasActRelu = 2, kBiasActLrelu = 3 };

struct bias_act_kernel_params {
    // All tensors are contiguous, of the same dtype T, and sizeX elements long unless noted.
    const void* x;     // grad == 0: the input x. grad == 1: the upstream gradient dy.
    const void* b;     // [sizeB] bias, or nullptr. Element i uses b[(i / stepB) % sizeB].
    const void* xref;  // grad == 1 only: the forward input x, or nullptr (then yref gives the sign).
                       // Required when clamp >= 0.
    const void* yref;  // grad == 1 only: the forward output y, or nullptr.
    void*       y;     // the output: y = clamp(act(x + b) * gain), or dx for grad == 1.
    void*       db;    // grad == 1 only: [sizeB] in the accumulation type (float, double for double),
                       // the sums of dx over all but the bias dimension; or nullptr. Needs stepB > 1.

    int     grad;      // 0: forward; 1: first-order gradient dx = dy * dy/dx evaluated at xref/yref.
    int     act;       // BiasActCode
    double  alpha;     // lrelu slope
    double  gain;      // multiplies after the activation
    double  clamp;     // clamp to [-clamp, clamp] after the gain; < 0 for none
    int64_t sizeX;
    int64_t sizeB;     // 1 when b == nullptr
    int64_t stepB;     // product of the sizes after the bias dimension
};

// Gradient (grad == 1): dx = dy * gain * slope * mask. For relu/lrelu the slope is 1 where the
// pre-activation value s > 0, else 0 / alpha, with s = xref + b when xref is given, else taken from
// the sign of yref * gain (valid for alpha >= 0). With clamp >= 0, xref is required: the mask is 1
// where the recomputed unclamped output lies in [-clamp, clamp] (torch.clamp's rule). Computing
// the mask from x rather than from the rounded y keeps fp16/bf16 gradients exact at the bounds.

// T: float, double, c10::Half, c10::BFloat16 (math in float, double for double).
template <class T> void bias_act_cpu(const bias_act_kernel_params& p);
// CUDA launcher, defined in csrc/cuda/bias_act.cu; `stream` is a cudaStream_t.
template <class T> void bias_act_cuda(const bias_act_kernel_params& p, void* stream);
