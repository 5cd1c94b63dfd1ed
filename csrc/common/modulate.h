// Modulation and demodulation of StyleGAN2's convolution weights, fused: kernel parameters and the
// CPU launchers. Plain C++.
//
// With weights W[b, o, j] (j = i * K + k over the input channels i and the K = kh * kw taps; one
// shared weight when wbatch = 1, else one per sample) and styles s[b, i]:
//   ws[b, o, j]  = W[b, o, j] * s[b, i]
//   d[b, o]      = 1 / sqrt(sum_j ws[b, o, j]^2 + eps)          (demodulate; else d = 1)
//   out[b, o, j] = ws[b, o, j] * d[b, o]
// Backward, with g = dL/dout:
//   t[b, o]      = sum_j g[b, o, j] * ws[b, o, j]
//   dws          = d * g - d^3 * t * ws                           (demodulate; else dws = g)
//   dW[b, o, j]  = dws * s[b, i]                                  (per sample; summed by the caller
//                                                                  for a shared weight)
//   ds[b, i]     = sum_{o, k} dws[b, o, i * K + k] * W[b, o, i * K + k]
#pragma once
#include <cstdint>

struct modulate_kernel_params {
    const void* w;       // [wbatch, O, I * K] contiguous, dtype T
    const void* s;       // [batch, I] contiguous, dtype T
    void*       out;     // [batch, O, I * K], dtype T (forward output)
    void*       dcoef;   // [batch, O], type A: forward output (demodulate), backward input
    const void* g;       // [batch, O, I * K], dtype T (backward input)
    void*       dw;      // [batch, O, I * K], dtype T (backward output, or nullptr)
    void*       ds;      // [batch, I], type A (backward output, or nullptr)
    void*       partial; // [batch, O, I], type A: backward scratch for ds

    int    batch, wbatch, out_channels, in_channels, taps;
    bool   demodulate;
    double eps;
};

// T: float, double, c10::Half, c10::BFloat16; A is double for T = double, else float.
template <class T> void modulate_cpu(const modulate_kernel_params& p);
template <class T> void modulate_backward_cpu(const modulate_kernel_params& p);
