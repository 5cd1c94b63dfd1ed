// upfirdn2d (upsample by zero insertion, pad/crop, FIR filter, decimate): kernel parameters and
// launchers (CPU and CUDA). Plain C++ so that both the CPU sources and nvcc can include it.
//
// Definition (the semantics of rlse_fast/ops/upfirdn2d.py `_upfirdn2d_ref`), per image plane:
//   U[j, i] = x[j / upy, i / upx] when j % upy == 0 and i % upx == 0, else 0
//   y[oy, ox] = gain * sum_{ky, kx} fc[ky, kx] * U[oy * downy + ky - pady0, ox * downx + kx - padx0]
// where fc is the filter flipped in both axes (a true convolution) unless flip is set, and U is 0
// outside [0, inH * upy) x [0, inW * upx). Output size: outH = (inH * upy + pady0 + pady1 - filterH)
// / downy + 1, likewise outW. A separable filter is 1-D of length filterW == filterH and acts as the
// outer product f[ky] * f[kx].
#pragma once
#include <cstdint>

struct upfirdn2d_kernel_params {
    const void* x;        // [major, inH, inW] contiguous, dtype T (NHWC: [major / channels, inH, inW, channels])
    const void* f;        // filter in the accumulation type A (double for T = double, else float):
                          // [filterH, filterW], or [filterW] when separable
    void*       y;        // [major, outH, outW] contiguous, dtype T (NHWC: [major / channels, outH, outW, channels])

    int     upx, upy, downx, downy;
    int     padx0, padx1, pady0, pady1;  // negative values crop
    int     flip;         // 1: correlate with f as given; 0: convolve (flip f)
    int     separable;    // 1: f is 1-D, applied along both axes
    double  gain;         // multiplies the output
    int64_t major;        // N * C
    int64_t channels;     // 0: planar (NCHW) x and y; > 0: channels-last (NHWC) with C = channels
                          // (CUDA only; the CPU bindings convert to NCHW and back)
    int     inH, inW, outH, outW;
    int     filterH, filterW;
};

// T: float, double, c10::Half, c10::BFloat16.
template <class T> void upfirdn2d_cpu(const upfirdn2d_kernel_params& p);
// CUDA launcher, defined in csrc/cuda/upfirdn2d.cu; `stream` is a cudaStream_t.
template <class T> void upfirdn2d_cuda(const upfirdn2d_kernel_params& p, void* stream);
