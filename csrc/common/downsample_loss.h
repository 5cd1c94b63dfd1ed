// Fused strided separable FIR downscale (reflect padding) + per-sample sum of squared differences:
// kernel parameters and launchers (CPU and CUDA). Plain C++ for both the CPU sources and nvcc.
//
// With taps k[0..ntaps), stride s = factor, pad0 before and pad1 = ntaps - s - pad0 after (reflect,
// each < the image size), per plane of y [H, W]:
//   D[i, j] = sum_{t, u} k[t] * k[u] * y[refl_H(i*s + t - pad0), refl_W(j*s + u - pad0)]
//   diff[i, j] = D[i, j] - x[i, j]                 (i < h = H / s, j < w = W / s)
//   loss[b] = sum over the channels and pixels of sample b of diff^2
// refl_n(q) = -q for q < 0, 2(n-1) - q for q >= n (PyTorch's 'reflect'). rlse_fast passes PULSE's
// bicubic taps (rlse_fast/downsample.py); factor 1 is the identity (taps [1], pad0 0).
// Backward: dy = D^T(g) with g[i, j] = 2 * gloss[b] * diff[i, j].
#pragma once
#include <cstdint>

struct downsample_loss_kernel_params {
    const void* y;        // [batch, channels, H, W] contiguous, dtype T (forward)
    const void* x;        // [batch, channels, h, w] contiguous, accumulation type A (forward)
    const void* taps;     // [ntaps], type A
    void*       loss;     // [batch], type A (forward output)
    void*       diff;     // [batch, channels, h, w], type A: forward output when not nullptr,
                          // backward input
    const void* gloss;    // [batch], type A: the upstream gradient (backward)
    void*       dy;       // [batch, channels, H, W], dtype T (backward output)

    int     batch, channels;
    int     H, W, h, w;
    int     factor, ntaps, pad0;
};

// T: float, double, c10::Half, c10::BFloat16; A is double for T = double, else float.
template <class T> void downsample_loss_cpu(const downsample_loss_kernel_params& p);
template <class T> void downsample_loss_backward_cpu(const downsample_loss_kernel_params& p);
// CUDA launchers, defined in csrc/cuda/downsample_loss.cu; `stream` is a cudaStream_t.
template <class T> void downsample_loss_cuda(const downsample_loss_kernel_params& p, void* stream);
template <class T> void downsample_loss_backward_cuda(const downsample_loss_kernel_params& p, void* stream);
