// C entry points over the CUDA launchers for the host emulation build (tests only; see emu.h).
// The test's Python side mirrors csrc/cuda/bindings_cuda.cpp and calls these through ctypes with
// pointers to CPU tensors. dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16. Returns 0, or 1 with
// the message in rlse_emu_error().
#include "../../common/bias_act.h"
#include "../../common/downsample_loss.h"
#include "../../common/upfirdn2d.h"
#include "emu.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace {

thread_local std::string g_error;

template <class F>
int by_dtype(int dtype, F&& f) {
    try {
        switch (dtype) {
            case 0: f(float{}); break;
            case 1: f(double{}); break;
            case 2: f(c10::Half{}); break;
            case 3: f(c10::BFloat16{}); break;
            default: throw std::invalid_argument("unknown dtype code");
        }
        return 0;
    } catch (const std::exception& e) {
        g_error = e.what();
        return 1;
    }
}

}  // namespace

extern "C" {

const char* rlse_emu_error() { return g_error.c_str(); }

void rlse_emu_force_index64(int on) { emu_force_index64() = on != 0; }

int rlse_emu_bias_act(int dtype, const void* x, const void* b, const void* xref, const void* yref, void* y,
                      void* db, int grad, int act, double alpha, double gain, double clamp, int64_t sizeX, int64_t sizeB,
                      int64_t stepB) {
    bias_act_kernel_params p{};
    p.x = x;
    p.b = b;
    p.xref = xref;
    p.yref = yref;
    p.y = y;
    p.db = db;
    p.grad = grad;
    p.act = act;
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    p.sizeX = sizeX;
    p.sizeB = sizeB;
    p.stepB = stepB;
    return by_dtype(dtype, [&](auto tag) { bias_act_cuda<decltype(tag)>(p, nullptr); });
}

int rlse_emu_upfirdn2d(int dtype, const void* x, const void* f, void* y, int upx, int upy, int downx, int downy,
                       int padx0, int padx1, int pady0, int pady1, int flip, int separable, double gain,
                       int64_t major, int inH, int inW, int outH, int outW, int filterH, int filterW,
                       int64_t channels) {
    upfirdn2d_kernel_params p{};
    p.x = x;
    p.f = f;
    p.y = y;
    p.upx = upx;
    p.upy = upy;
    p.downx = downx;
    p.downy = downy;
    p.padx0 = padx0;
    p.padx1 = padx1;
    p.pady0 = pady0;
    p.pady1 = pady1;
    p.flip = flip;
    p.separable = separable;
    p.gain = gain;
    p.major = major;
    p.inH = inH;
    p.inW = inW;
    p.outH = outH;
    p.outW = outW;
    p.filterH = filterH;
    p.filterW = filterW;
    p.channels = channels;
    return by_dtype(dtype, [&](auto tag) { upfirdn2d_cuda<decltype(tag)>(p, nullptr); });
}

int rlse_emu_downsample_loss(int dtype, int backward, const void* y, const void* x, const void* taps, void* loss,
                             void* diff, const void* gloss, void* dy, int batch, int channels, int H, int W, int h,
                             int w, int factor, int ntaps, int pad0) {
    downsample_loss_kernel_params p{};
    p.y = y;
    p.x = x;
    p.taps = taps;
    p.loss = loss;
    p.diff = diff;
    p.gloss = gloss;
    p.dy = dy;
    p.batch = batch;
    p.channels = channels;
    p.H = H;
    p.W = W;
    p.h = h;
    p.w = w;
    p.factor = factor;
    p.ntaps = ntaps;
    p.pad0 = pad0;
    return by_dtype(dtype, [&](auto tag) {
        if (backward)
            downsample_loss_backward_cuda<decltype(tag)>(p, nullptr);
        else
            downsample_loss_cuda<decltype(tag)>(p, nullptr);
    });
}

}  // extern "C"
