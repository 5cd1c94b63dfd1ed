// StyleGAN v1's layer epilogue (definition: rlse_fast/ops/adain.py): kernel parameters and the CPU
// launchers. Plain C++.
//
// Per plane r = b * C + c of N = H * W elements, with u = x + noise * strength + bias,
// v = lrelu(u) (slope alpha), mean and rstd = 1 / sqrt(mean((v - mean)^2) + eps):
//   forward   y = scale * (v - mean) * rstd + shift;  stats[r] = (mean, rstd)
// backward, with g = dy and x_hat = (v - mean) * rstd: only the plane sums G = sum g and
// P = sum g * x_hat are needed,
//   dv = rstd * scale * (g - G / N - x_hat * P / N),   du = lrelu'(u) * dv  (written to y)
//   sums[k][r] = (G, P, sum du, sum du * noise)[k]  (dshift, dscale, and the bias / strength sums;
//   one contiguous row per sum, so that each gradient is a contiguous (B, C) view)
#pragma once
#include <cstdint>

struct adain_kernel_params {
    const void* x;         // [planes, N], dtype T
    const void* noise;     // [noise batch, N], dtype T, or nullptr
    const void* strength;  // [planes], type A (unused without noise)
    const void* bias;      // [planes], type A
    const void* scale;     // [planes], type A
    const void* shift;     // [planes], type A (forward)
    const void* g;         // [planes, N], dtype T (backward: dy)
    void*       y;         // [planes, N], dtype T: forward y, backward du
    void*       stats;     // [planes, 2], type A: forward output, backward input
    void*       sums;      // [4, planes], type A (backward output)

    int64_t planes, channels, n, noise_bstride;  // noise_bstride: 0 (one map for all) or n
    double  eps, alpha;
};

// T: float, double, c10::Half, c10::BFloat16; A is double for T = double, else float.
template <class T> void adain_cpu(const adain_kernel_params& p);
template <class T> void adain_backward_cpu(const adain_kernel_params& p);
