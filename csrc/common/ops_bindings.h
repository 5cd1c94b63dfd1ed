// The Python-facing functions of both extensions, rlse_fast._C (csrc/bindings_cpu.cpp) and
// rlse_fast._cuda (csrc/cuda/bindings_cuda.cpp): argument checks, output allocation and kernel
// parameters, written once over a backend B. Every precondition is checked here, with a message
// that names the argument, before a kernel runs. Include only from a bindings file (it needs
// torch/extension.h, the costly header). A backend provides:
//   B::check_device(t, ref, op, name)       t on the backend's device (and on ref's device)
//   B::Guard(device)                         RAII: make `device` current (the CUDA device guard)
//   B::kFusedDbMinChannels, kFusedDbMaxRun   bias_act_backward fuses db from this many channels on,
//                                            up to this many elements of x per channel
//   B::kMaxTaps, B::kNeedsDiff               downsample_loss: tap limit; diff always written
//   B::kNhwcUpfirdn2d                        upfirdn2d runs channels-last tensors natively
//   B::bias_act<T>(p), B::upfirdn2d<T>(p), B::downsample_loss<T>(p), B::downsample_loss_backward<T>(p)
#pragma once
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bias_act.h"
#include "downsample_loss.h"
#include "upfirdn2d.h"

#define RLSE_DISPATCH_FLOAT_TYPES(dtype, name, ...) \
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, __VA_ARGS__)

namespace rlse {
namespace bindings {

inline bool is_float_dtype(at::ScalarType s) {
    return s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16;
}

// The accumulation dtype of the kernels: double for double tensors, else float.
inline at::ScalarType acc_dtype(at::ScalarType s) { return s == at::kDouble ? at::kDouble : at::kFloat; }

template <class B>
void check_input(const at::Tensor& t, const char* op, const char* name, bool channels_last_ok = false) {
    B::check_device(t, t, op, name);
    TORCH_CHECK(is_float_dtype(t.scalar_type()), op, ": ", name,
                " must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
    if (channels_last_ok && t.dim() == 4) {
        TORCH_CHECK(t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast), op, ": ", name,
                    " must be contiguous or channels_last");
    } else {
        TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
    }
}

// Optional tensors are passed as empty tensors (numel 0), as in the official StyleGAN2 op.
template <class B>
void check_like(const at::Tensor& t, const at::Tensor& x, const char* op, const char* name) {
    B::check_device(t, x, op, name);
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have the dtype of x (", x.scalar_type(),
                "), got ", t.scalar_type());
    TORCH_CHECK(t.sizes() == x.sizes(), op, ": ", name, " must have the shape of x ", x.sizes(), ", got ", t.sizes());
    TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// --- bias_act ------------------------------------------------------------------------------------

// Checks every argument of bias_act; returns the (uninitialised) output.
template <class B>
at::Tensor bias_act_checked(const at::Tensor& x, const at::Tensor& b, const at::Tensor& xref,
                            const at::Tensor& yref, int64_t grad, int64_t dim, int64_t act, double clamp) {
    const char* op = "bias_act";
    check_input<B>(x, op, "x");
    TORCH_CHECK(grad == 0 || grad == 1, op, ": grad must be 0 or 1, got ", grad);
    TORCH_CHECK(act == kBiasActLinear || act == kBiasActRelu || act == kBiasActLrelu, op,
                ": act must be 1 (linear), 2 (relu) or 3 (lrelu), got ", act);
    if (b.numel()) {
        TORCH_CHECK(dim >= 0 && dim < x.dim(), op, ": dim ", dim, " is out of range for a ", x.dim(), "-D x");
        B::check_device(b, x, op, "b");
        TORCH_CHECK(b.scalar_type() == x.scalar_type(), op, ": b must have the dtype of x (", x.scalar_type(),
                    "), got ", b.scalar_type());
        TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), op, ": b must have shape (", x.size(dim),
                    ",) = x.shape[dim], got ", b.sizes());
        TORCH_CHECK(b.is_contiguous(), op, ": b must be contiguous");
    }
    if (xref.numel()) check_like<B>(xref, x, op, "xref");
    if (yref.numel()) check_like<B>(yref, x, op, "yref");
    if (grad == 1 && act != kBiasActLinear)
        TORCH_CHECK(xref.numel() || yref.numel(), op, ": the gradient of relu/lrelu needs xref or yref");
    if (grad == 1 && clamp >= 0) TORCH_CHECK(xref.numel(), op, ": the gradient with a clamp needs xref");
    TORCH_CHECK(x.numel() <= INT64_MAX / 2, op, ": x is too large");
    return at::empty_like(x, at::MemoryFormat::Contiguous);
}

inline bias_act_kernel_params bias_act_params(const at::Tensor& x, const at::Tensor& b, const at::Tensor& xref,
                                              const at::Tensor& yref, at::Tensor& y, int64_t grad, int64_t dim,
                                              int64_t act, double alpha, double gain, double clamp) {
    bias_act_kernel_params p{};
    p.x = x.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.xref = xref.numel() ? xref.data_ptr() : nullptr;
    p.yref = yref.numel() ? yref.data_ptr() : nullptr;
    p.y = y.data_ptr();
    p.db = nullptr;
    p.grad = static_cast<int>(grad);
    p.act = static_cast<int>(act);
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    p.sizeX = x.numel();
    p.sizeB = b.numel() ? b.numel() : 1;
    p.stepB = 1;
    if (b.numel())
        for (int64_t i = dim + 1; i < x.dim(); i++) p.stepB *= x.size(i);
    return p;
}

template <class B>
void launch_bias_act(const bias_act_kernel_params& p, at::ScalarType dtype) {
    RLSE_DISPATCH_FLOAT_TYPES(dtype, "bias_act", [&] { B::template bias_act<scalar_t>(p); });
}

// y = clamp(act(x + b) * gain) (grad = 0), or its gradient for upstream dy passed as x (grad = 1).
template <class B>
at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& xref, const at::Tensor& yref,
                    int64_t grad, int64_t dim, int64_t act, double alpha, double gain, double clamp) {
    auto y = bias_act_checked<B>(x, b, xref, yref, grad, dim, act, clamp);
    if (x.numel() == 0) return y;
    const typename B::Guard guard(x.device());
    launch_bias_act<B>(bias_act_params(x, b, xref, yref, y, grad, dim, act, alpha, gain, clamp), x.scalar_type());
    return y;
}

// The gradient of bias_act for upstream dy: (dx, db), db (b's dtype) only when need_db, else empty.
template <class B>
std::vector<at::Tensor> bias_act_backward(const at::Tensor& dy, const at::Tensor& b, const at::Tensor& xref,
                                          const at::Tensor& yref, int64_t dim, int64_t act, double alpha,
                                          double gain, double clamp, bool need_db) {
    const char* op = "bias_act_backward";
    TORCH_CHECK(!need_db || b.numel(), op, ": need_db needs the bias b");
    if (!need_db) return {bias_act<B>(dy, b, xref, yref, 1, dim, act, alpha, gain, clamp), at::Tensor()};
    int64_t stepB = 1;
    for (int64_t i = dim + 1; i < dy.dim(); i++) stepB *= dy.size(i);
    // The fused kernel needs a run of stepB > 1 elements per bias value; on a GPU it runs a block
    // per channel, so with few channels most of the GPU would idle, and with long channels (a
    // per-sample bias over a 1024 px layer: 1M elements each) one block's loop would take the
    // time of the whole pass. Otherwise ATen sums dx.
    const int64_t run = b.numel() ? dy.numel() / b.numel() : 0;
    if (stepB == 1 || dy.numel() == 0 || b.numel() < B::kFusedDbMinChannels || run > B::kFusedDbMaxRun) {
        auto dx = bias_act<B>(dy, b, xref, yref, 1, dim, act, alpha, gain, clamp);
        std::vector<int64_t> dims;
        for (int64_t i = 0; i < dx.dim(); i++)
            if (i != dim) dims.push_back(i);
        if (dims.empty()) return {dx, dx.clone()};  // 1-D x: db = dx (an empty dim list would sum all)
        return {dx, dx.sum(dims, false, acc_dtype(dx.scalar_type())).to(b.scalar_type())};
    }
    auto dx = bias_act_checked<B>(dy, b, xref, yref, 1, dim, act, clamp);
    const typename B::Guard guard(dy.device());
    auto db = at::empty({b.numel()}, b.options().dtype(acc_dtype(b.scalar_type())));
    bias_act_kernel_params p = bias_act_params(dy, b, xref, yref, dx, 1, dim, act, alpha, gain, clamp);
    p.db = db.data_ptr();
    launch_bias_act<B>(p, dy.scalar_type());
    return {dx, db.to(b.scalar_type())};
}

// --- upfirdn2d -----------------------------------------------------------------------------------

template <class B>
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                     double gain) {
    const char* op = "upfirdn2d";
    check_input<B>(x, op, "x", /*channels_last_ok=*/true);
    TORCH_CHECK(x.dim() == 4, op, ": x must be (N, C, H, W), got shape ", x.sizes());
    // Channels-last in, channels-last out (a tensor that is both, e.g. C == 1, counts as NCHW).
    const bool nhwc = !x.is_contiguous();
    if (nhwc && !B::kNhwcUpfirdn2d)
        return upfirdn2d<B>(x.contiguous(), f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain)
            .contiguous(at::MemoryFormat::ChannelsLast);
    B::check_device(f, x, op, "f");
    TORCH_CHECK(f.scalar_type() == acc_dtype(x.scalar_type()), op, ": f must be ", acc_dtype(x.scalar_type()),
                " for a ", x.scalar_type(), " x, got ", f.scalar_type());
    TORCH_CHECK(f.dim() == 1 || f.dim() == 2, op, ": f must be 1-D (separable) or 2-D, got shape ", f.sizes());
    TORCH_CHECK(f.numel() > 0, op, ": f must not be empty");
    TORCH_CHECK(f.is_contiguous(), op, ": f must be contiguous");
    TORCH_CHECK(upx >= 1 && upy >= 1, op, ": up factors must be >= 1, got [", upx, ", ", upy, "]");
    TORCH_CHECK(downx >= 1 && downy >= 1, op, ": down factors must be >= 1, got [", downx, ", ", downy, "]");
    const int64_t fw = f.size(-1), fh = f.size(0);
    const int64_t inH = x.size(2), inW = x.size(3);
    const int64_t upH = inH * upy + pady0 + pady1, upW = inW * upx + padx0 + padx1;
    TORCH_CHECK(upH >= fh && upW >= fw, op, ": the padded, upsampled image (", upH, "x", upW,
                ") is smaller than the filter (", fh, "x", fw, ")");
    const int64_t outH = (upH - fh) / downy + 1, outW = (upW - fw) / downx + 1;
    const int64_t lim = INT32_MAX / 4;
    TORCH_CHECK(inH * upy < lim && inW * upx < lim && outH < lim && outW < lim && fh < lim && fw < lim &&
                    std::max({std::abs(padx0), std::abs(padx1), std::abs(pady0), std::abs(pady1)}) < lim,
                op, ": sizes or paddings are too large");

    const typename B::Guard guard(x.device());
    auto y = at::empty({x.size(0), x.size(1), outH, outW}, x.options(),
                       nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    if (y.numel() == 0) return y;
    upfirdn2d_kernel_params p{};
    p.x = x.data_ptr();
    p.f = f.data_ptr();
    p.y = y.data_ptr();
    p.upx = static_cast<int>(upx);
    p.upy = static_cast<int>(upy);
    p.downx = static_cast<int>(downx);
    p.downy = static_cast<int>(downy);
    p.padx0 = static_cast<int>(padx0);
    p.padx1 = static_cast<int>(padx1);
    p.pady0 = static_cast<int>(pady0);
    p.pady1 = static_cast<int>(pady1);
    p.flip = flip ? 1 : 0;
    p.separable = f.dim() == 1 ? 1 : 0;
    p.gain = gain;
    p.major = x.size(0) * x.size(1);
    p.channels = nhwc ? x.size(1) : 0;
    p.inH = static_cast<int>(inH);
    p.inW = static_cast<int>(inW);
    p.outH = static_cast<int>(outH);
    p.outW = static_cast<int>(outW);
    p.filterH = static_cast<int>(fh);
    p.filterW = static_cast<int>(fw);
    RLSE_DISPATCH_FLOAT_TYPES(x.scalar_type(), "upfirdn2d", [&] { B::template upfirdn2d<scalar_t>(p); });
    return y;
}

// --- downsample_loss -----------------------------------------------------------------------------

template <class B>
void check_downsample(int64_t H, int64_t W, const at::Tensor& taps, const at::Tensor& ref, int64_t factor,
                      int64_t pad0, at::ScalarType acc, const char* op) {
    TORCH_CHECK(factor >= 1, op, ": factor must be >= 1, got ", factor);
    B::check_device(taps, ref, op, "taps");
    TORCH_CHECK(taps.scalar_type() == acc, op, ": taps must be ", acc, ", got ", taps.scalar_type());
    TORCH_CHECK(taps.dim() == 1 && taps.is_contiguous() && taps.numel() >= factor, op,
                ": taps must be a contiguous 1-D tensor of at least `factor` taps, got shape ", taps.sizes());
    TORCH_CHECK(taps.numel() <= B::kMaxTaps, op, ": at most ", B::kMaxTaps, " taps fit the kernel (factor <= ",
                B::kMaxTaps / 4, " for the bicubic filter), got ", taps.numel());
    const int64_t pad1 = taps.numel() - factor - pad0;
    TORCH_CHECK(pad0 >= 0 && pad1 >= 0, op, ": pad0 must be in [0, ntaps - factor], got ", pad0);
    TORCH_CHECK(H % factor == 0 && W % factor == 0, op, ": image size ", H, "x", W,
                " is not a multiple of the factor ", factor);
    // One reflection at most on either side (as PyTorch's 'reflect' padding).
    TORCH_CHECK(H > std::max(pad0, pad1) && W > std::max(pad0, pad1), op, ": image size ", H, "x", W,
                " is too small for factor ", factor, " (reflect padding ", std::max(pad0, pad1),
                " needs a larger image)");
    TORCH_CHECK(H < INT32_MAX / 4 && W < INT32_MAX / 4 && H * W < INT32_MAX, op, ": image is too large");
}

inline downsample_loss_kernel_params downsample_params(int64_t B, int64_t C, int64_t H, int64_t W, int64_t factor,
                                                       const at::Tensor& taps, int64_t pad0) {
    downsample_loss_kernel_params p{};
    p.taps = taps.data_ptr();
    p.batch = static_cast<int>(B);
    p.channels = static_cast<int>(C);
    p.H = static_cast<int>(H);
    p.W = static_cast<int>(W);
    p.h = static_cast<int>(H / factor);
    p.w = static_cast<int>(W / factor);
    p.factor = static_cast<int>(factor);
    p.ntaps = static_cast<int>(taps.numel());
    p.pad0 = static_cast<int>(pad0);
    return p;
}

// Returns (loss (B,), diff (B, C, H/s, W/s) or an empty tensor), both in the accumulation dtype.
template <class B>
std::vector<at::Tensor> downsample_loss(const at::Tensor& y, const at::Tensor& x, const at::Tensor& taps,
                                        int64_t factor, int64_t pad0, bool keep_diff) {
    const char* op = "downsample_loss";
    check_input<B>(y, op, "y");
    TORCH_CHECK(y.dim() == 4, op, ": y must be (B, C, H, W), got shape ", y.sizes());
    const auto acc = acc_dtype(y.scalar_type());
    check_downsample<B>(y.size(2), y.size(3), taps, y, factor, pad0, acc, op);
    B::check_device(x, y, op, "x");
    TORCH_CHECK(x.scalar_type() == acc, op, ": x must be ", acc, " for a ", y.scalar_type(), " y, got ",
                x.scalar_type());
    const std::vector<int64_t> lo{y.size(0), y.size(1), y.size(2) / factor, y.size(3) / factor};
    TORCH_CHECK(x.sizes() == at::IntArrayRef(lo), op, ": x must have shape ", at::IntArrayRef(lo),
                " (y downscaled by ", factor, "), got ", x.sizes());
    TORCH_CHECK(x.is_contiguous(), op, ": x must be contiguous");
    TORCH_CHECK(y.size(0) <= INT32_MAX && y.size(1) <= INT32_MAX, op, ": too many samples or channels");

    const typename B::Guard guard(y.device());
    auto loss = at::zeros({y.size(0)}, y.options().dtype(acc));
    // A backend that always writes diff gets one; an unwanted one is then freed on return.
    auto diff = at::empty(keep_diff || B::kNeedsDiff ? lo : std::vector<int64_t>{0}, y.options().dtype(acc));
    auto diff_out = keep_diff ? diff : at::empty({0}, y.options().dtype(acc));
    if (y.numel() == 0) return {loss, diff_out};
    auto p = downsample_params(y.size(0), y.size(1), y.size(2), y.size(3), factor, taps, pad0);
    p.y = y.data_ptr();
    p.x = x.data_ptr();
    p.loss = loss.data_ptr();
    p.diff = diff.numel() ? diff.data_ptr() : nullptr;
    RLSE_DISPATCH_FLOAT_TYPES(y.scalar_type(), "downsample_loss", [&] { B::template downsample_loss<scalar_t>(p); });
    return {loss, diff_out};
}

// dL/dy for upstream gradient gloss (B,), from the diff kept by the forward pass.
template <class B>
at::Tensor downsample_loss_backward(const at::Tensor& diff, const at::Tensor& gloss, const at::Tensor& taps,
                                    int64_t factor, int64_t pad0, int64_t H, int64_t W, at::ScalarType dtype) {
    const char* op = "downsample_loss_backward";
    B::check_device(diff, diff, op, "diff");
    TORCH_CHECK(is_float_dtype(dtype), op, ": dtype must be float32, float64, float16 or bfloat16, got ", dtype);
    const auto acc = acc_dtype(dtype);
    check_downsample<B>(H, W, taps, diff, factor, pad0, acc, op);
    TORCH_CHECK(diff.scalar_type() == acc && diff.dim() == 4 && diff.is_contiguous(), op,
                ": diff must be a contiguous 4-D ", acc, " tensor, got ", diff.scalar_type(), " ", diff.sizes());
    TORCH_CHECK(diff.size(2) == H / factor && diff.size(3) == W / factor, op, ": diff must be ", H / factor, "x",
                W / factor, ", got ", diff.size(2), "x", diff.size(3));
    B::check_device(gloss, diff, op, "gloss");
    TORCH_CHECK(gloss.scalar_type() == acc && gloss.dim() == 1 && gloss.size(0) == diff.size(0) &&
                    gloss.is_contiguous(),
                op, ": gloss must be a contiguous ", acc, " tensor of shape (", diff.size(0), ",), got ",
                gloss.scalar_type(), " ", gloss.sizes());

    const typename B::Guard guard(diff.device());
    auto dy = at::empty({diff.size(0), diff.size(1), H, W}, diff.options().dtype(dtype));
    if (dy.numel() == 0) return dy;
    auto p = downsample_params(diff.size(0), diff.size(1), H, W, factor, taps, pad0);
    p.diff = const_cast<void*>(diff.data_ptr());
    p.gloss = gloss.data_ptr();
    p.dy = dy.data_ptr();
    RLSE_DISPATCH_FLOAT_TYPES(dtype, "downsample_loss_backward",
                              [&] { B::template downsample_loss_backward<scalar_t>(p); });
    return dy;
}

// --- the module ------------------------------------------------------------------------------------

template <class B>
void define_ops(pybind11::module& m) {
    namespace py = pybind11;
    m.def("bias_act", &bias_act<B>, "bias + activation + gain + clamp, or its gradient (grad=1)", py::arg("x"),
          py::arg("b"), py::arg("xref"), py::arg("yref"), py::arg("grad"), py::arg("dim"), py::arg("act"),
          py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
    m.def("bias_act_backward", &bias_act_backward<B>, "gradient of bias_act: (dx, db), db fused when need_db",
          py::arg("dy"), py::arg("b"), py::arg("xref"), py::arg("yref"), py::arg("dim"), py::arg("act"),
          py::arg("alpha"), py::arg("gain"), py::arg("clamp"), py::arg("need_db"));
    m.def("upfirdn2d", &upfirdn2d<B>, "upsample, pad, FIR filter, downsample", py::arg("x"), py::arg("f"),
          py::arg("upx"), py::arg("upy"), py::arg("downx"), py::arg("downy"), py::arg("padx0"), py::arg("padx1"),
          py::arg("pady0"), py::arg("pady1"), py::arg("flip"), py::arg("gain"));
    m.def("downsample_loss", &downsample_loss<B>, "fused downscale + per-sample squared error: (loss, diff)",
          py::arg("y"), py::arg("x"), py::arg("taps"), py::arg("factor"), py::arg("pad0"), py::arg("keep_diff"));
    m.def("downsample_loss_backward", &downsample_loss_backward<B>, "gradient of downsample_loss w.r.t. y",
          py::arg("diff"), py::arg("gloss"), py::arg("taps"), py::arg("factor"), py::arg("pad0"), py::arg("H"),
          py::arg("W"), py::arg("dtype"));
}

}  // namespace bindings
}  // namespace rlse
