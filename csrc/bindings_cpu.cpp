// Python bindings of the CPU extension rlse_fast._C: the ops of csrc/common/ops_bindings.h over the
// CPU kernels (csrc/cpu/), plus the choice of the kernels' instruction set (csrc/cpu/cpu_isa.h).
#include <torch/extension.h>

#include <string>
#include <vector>

#include "adain.h"
#include "cpu/cpu_isa.h"
#include "modulate.h"
#include "ops_bindings.h"

namespace {

struct CpuBackend {
    static constexpr int64_t kFusedDbMinChannels = 1;
    static constexpr int64_t kFusedDbMaxRun = INT64_MAX;
    static constexpr int64_t kMaxTaps = INT32_MAX / 4;
    static constexpr bool kNeedsDiff = false;
    static constexpr bool kNhwcUpfirdn2d = false;  // the bindings convert a channels-last x and y

    struct Guard {
        explicit Guard(const c10::Device&) {}
    };

    static void check_device(const at::Tensor& t, const at::Tensor&, const char* op, const char* name) {
        TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got one on ", t.device());
    }

    template <class T> static void bias_act(const bias_act_kernel_params& p) { bias_act_cpu<T>(p); }
    template <class T> static void upfirdn2d(const upfirdn2d_kernel_params& p) { upfirdn2d_cpu<T>(p); }
    template <class T> static void downsample_loss(const downsample_loss_kernel_params& p) {
        downsample_loss_cpu<T>(p);
    }
    template <class T> static void downsample_loss_backward(const downsample_loss_kernel_params& p) {
        downsample_loss_backward_cpu<T>(p);
    }
};

// --- modulate (CPU only) ------------------------------------------------------------------------

using rlse::bindings::acc_dtype;
using rlse::bindings::check_input;

// Checks w [wbatch, O, I, kh, kw] (wbatch 1 or B) and s [B, I]; fills the shape fields of p.
void modulate_shapes(const at::Tensor& w, const at::Tensor& s, modulate_kernel_params& p) {
    const char* op = "modulate";
    check_input<CpuBackend>(w, op, "weight");
    check_input<CpuBackend>(s, op, "styles");
    TORCH_CHECK(w.dim() == 5, op, ": weight must be (1 or B, O, I, kh, kw), got ", w.sizes());
    TORCH_CHECK(s.dim() == 2 && s.size(1) == w.size(2), op, ": styles must be (B, ", w.size(2), "), got ", s.sizes());
    TORCH_CHECK(w.size(0) == 1 || w.size(0) == s.size(0), op, ": weight's batch (", w.size(0),
                ") must be 1 or the styles' (", s.size(0), ")");
    TORCH_CHECK(s.scalar_type() == w.scalar_type(), op, ": styles must have the dtype of weight (", w.scalar_type(),
                "), got ", s.scalar_type());
    TORCH_CHECK(s.numel() > 0 && w.numel() > 0, op, ": empty weight or styles");
    p.batch = static_cast<int>(s.size(0));
    p.wbatch = static_cast<int>(w.size(0));
    p.out_channels = static_cast<int>(w.size(1));
    p.in_channels = static_cast<int>(w.size(2));
    p.taps = static_cast<int>(w.size(3) * w.size(4));
}

// (out [B, O, I, kh, kw], dcoef [B, O] in the accumulation dtype; empty without demodulation).
std::vector<at::Tensor> modulate(const at::Tensor& w, const at::Tensor& s, bool demodulate, double eps) {
    modulate_kernel_params p{};
    modulate_shapes(w, s, p);
    auto out = at::empty({s.size(0), w.size(1), w.size(2), w.size(3), w.size(4)}, w.options());
    auto dcoef = at::empty({demodulate ? s.size(0) : 0, w.size(1)}, w.options().dtype(acc_dtype(w.scalar_type())));
    p.w = w.data_ptr();
    p.s = s.data_ptr();
    p.out = out.data_ptr();
    p.dcoef = demodulate ? dcoef.data_ptr() : nullptr;
    p.demodulate = demodulate;
    p.eps = eps;
    RLSE_DISPATCH_FLOAT_TYPES(w.scalar_type(), "modulate", [&] { modulate_cpu<scalar_t>(p); });
    return {out, dcoef};
}

// (dw [B, O, I, kh, kw] per sample, or empty; ds [B, I] in the accumulation dtype, or empty).
std::vector<at::Tensor> modulate_backward(const at::Tensor& g, const at::Tensor& w, const at::Tensor& s,
                                          const at::Tensor& dcoef, bool demodulate, bool need_dw, bool need_ds) {
    const char* op = "modulate_backward";
    modulate_kernel_params p{};
    modulate_shapes(w, s, p);
    check_input<CpuBackend>(g, op, "grad");
    TORCH_CHECK(g.scalar_type() == w.scalar_type(), op, ": grad must have the dtype of weight");
    TORCH_CHECK(g.dim() == 5 && g.size(0) == s.size(0) && g.sizes().slice(1) == w.sizes().slice(1), op,
                ": grad must be (B, O, I, kh, kw) = (", s.size(0), ", ", w.sizes().slice(1), "), got ", g.sizes());
    const auto acc = w.options().dtype(acc_dtype(w.scalar_type()));
    if (demodulate) {
        TORCH_CHECK(dcoef.scalar_type() == acc.dtype().toScalarType() && dcoef.is_contiguous() && dcoef.dim() == 2 &&
                        dcoef.size(0) == s.size(0) && dcoef.size(1) == w.size(1),
                    op, ": dcoef must be the forward's (B, O) coefficients");
    }
    auto dw = at::empty({need_dw ? g.size(0) : 0, w.size(1), w.size(2), w.size(3), w.size(4)}, w.options());
    auto ds = at::empty({need_ds ? s.size(0) : 0, s.size(1)}, acc);
    auto partial = at::empty({need_ds ? s.size(0) * w.size(1) * w.size(2) : 0}, acc);
    p.w = w.data_ptr();
    p.s = s.data_ptr();
    p.g = g.data_ptr();
    p.dcoef = demodulate ? dcoef.data_ptr() : nullptr;
    p.dw = need_dw ? dw.data_ptr() : nullptr;
    p.ds = need_ds ? ds.data_ptr() : nullptr;
    p.partial = need_ds ? partial.data_ptr() : nullptr;
    p.demodulate = demodulate;
    if (need_dw || need_ds)
        RLSE_DISPATCH_FLOAT_TYPES(w.scalar_type(), "modulate_backward", [&] { modulate_backward_cpu<scalar_t>(p); });
    return {dw, ds};
}

// --- adain (StyleGAN v1's layer epilogue, CPU only) -------------------------------------------------

// Checks x [B, C, H, W], noise [1 or B, 1, H, W] or empty, and the (B * C,) per-plane vectors
// (strength, bias, scale[, shift]) in the accumulation dtype (strength may be empty without noise);
// returns the parameters with the inputs and shapes filled in.
adain_kernel_params adain_checked(const char* op, const at::Tensor& x, const at::Tensor& noise,
                                  const std::vector<at::Tensor>& planes, const char* const* names) {
    check_input<CpuBackend>(x, op, "x");
    TORCH_CHECK(x.dim() == 4, op, ": x must be (B, C, H, W), got ", x.sizes());
    const int64_t n = x.size(2) * x.size(3), count = x.size(0) * x.size(1);
    if (noise.numel()) {
        check_input<CpuBackend>(noise, op, "noise");
        TORCH_CHECK(noise.scalar_type() == x.scalar_type(), op, ": noise must have the dtype of x (", x.scalar_type(),
                    "), got ", noise.scalar_type());
        TORCH_CHECK(noise.dim() == 4 && (noise.size(0) == 1 || noise.size(0) == x.size(0)) && noise.size(1) == 1 &&
                        noise.size(2) == x.size(2) && noise.size(3) == x.size(3),
                    op, ": noise must be (1 or ", x.size(0), ", 1, ", x.size(2), ", ", x.size(3), "), got ",
                    noise.sizes());
    }
    const auto acc = acc_dtype(x.scalar_type());
    for (size_t i = 0; i < planes.size(); i++) {
        const at::Tensor& t = planes[i];
        if (!t.numel() && std::string(names[i]) == "strength" && !noise.numel()) continue;
        check_input<CpuBackend>(t, op, names[i]);
        TORCH_CHECK(t.scalar_type() == acc, op, ": ", names[i], " must be ", acc, " (the accumulation dtype), got ",
                    t.scalar_type());
        TORCH_CHECK(t.numel() == count, op, ": ", names[i], " must have B * C = ", count, " elements, got ",
                    t.numel());
    }
    adain_kernel_params p{};
    p.x = x.data_ptr();
    p.noise = noise.numel() ? noise.data_ptr() : nullptr;
    p.strength = planes[0].numel() ? planes[0].data_ptr() : nullptr;
    p.bias = planes[1].data_ptr();
    p.scale = planes[2].data_ptr();
    p.shift = planes.size() > 3 ? planes[3].data_ptr() : nullptr;
    p.planes = count;
    p.channels = x.size(1);
    p.n = n;
    p.noise_bstride = noise.numel() && noise.size(0) > 1 ? n : 0;
    return p;
}

// (y, stats [B, C, 2] = per-plane (mean, rstd)) of y = scale * instnorm(lrelu(x + noise * strength + bias)) + shift.
std::vector<at::Tensor> adain(const at::Tensor& x, const at::Tensor& noise, const at::Tensor& strength,
                              const at::Tensor& bias, const at::Tensor& scale, const at::Tensor& shift, double eps,
                              double alpha) {
    static const char* const names[] = {"strength", "bias", "scale", "shift"};
    auto p = adain_checked("adain", x, noise, {strength, bias, scale, shift}, names);
    auto y = at::empty_like(x);
    auto stats = at::empty({x.size(0), x.size(1), 2}, x.options().dtype(acc_dtype(x.scalar_type())));
    p.y = y.data_ptr();
    p.stats = stats.data_ptr();
    p.eps = eps;
    p.alpha = alpha;
    if (x.numel()) RLSE_DISPATCH_FLOAT_TYPES(x.scalar_type(), "adain", [&] { adain_cpu<scalar_t>(p); });
    return {y, stats};
}

// (du, sums [4, B, C] = per-plane (sum dy, sum dy * x_hat, sum du, sum du * noise)) for upstream dy.
std::vector<at::Tensor> adain_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& noise,
                                       const at::Tensor& strength, const at::Tensor& bias, const at::Tensor& scale,
                                       const at::Tensor& stats, double alpha) {
    const char* op = "adain_backward";
    static const char* const names[] = {"strength", "bias", "scale"};
    auto p = adain_checked(op, x, noise, {strength, bias, scale}, names);
    check_input<CpuBackend>(dy, op, "dy");
    TORCH_CHECK(dy.scalar_type() == x.scalar_type() && dy.sizes() == x.sizes(), op,
                ": dy must have the dtype and shape of x");
    const auto acc = x.options().dtype(acc_dtype(x.scalar_type()));
    TORCH_CHECK(stats.scalar_type() == acc.dtype().toScalarType() && stats.is_contiguous() &&
                    stats.numel() == 2 * p.planes,
                op, ": stats must be the forward's (B, C, 2) plane statistics");
    auto du = at::empty_like(x);
    auto sums = at::empty({4, x.size(0), x.size(1)}, acc);
    p.g = dy.data_ptr();
    p.y = du.data_ptr();
    p.stats = stats.data_ptr();
    p.sums = sums.data_ptr();
    p.alpha = alpha;
    if (x.numel()) RLSE_DISPATCH_FLOAT_TYPES(x.scalar_type(), "adain_backward", [&] { adain_backward_cpu<scalar_t>(p); });
    return {du, sums};
}

const rlse::CpuIsa kIsas[] = {rlse::CpuIsa::kBase, rlse::CpuIsa::kAvx2};

std::string cpu_isa() { return rlse::cpu_isa_name(rlse::cpu_isa()); }

std::vector<std::string> cpu_isas() {
    std::vector<std::string> names;
    for (auto isa : kIsas)
        if (rlse::cpu_isa_supported(isa)) names.push_back(rlse::cpu_isa_name(isa));
    return names;
}

// Switches the kernels to the build `name`; returns the previous one.
std::string set_cpu_isa(const std::string& name) {
    const std::string before = cpu_isa();
    for (auto isa : kIsas) {
        if (name != rlse::cpu_isa_name(isa)) continue;
        TORCH_CHECK(rlse::set_cpu_isa(isa), "set_cpu_isa: this CPU or build has no '", name, "' kernels; available: ",
                    c10::Join(", ", cpu_isas()));
        return before;
    }
    TORCH_CHECK(false, "set_cpu_isa: unknown kernel build '", name, "'; expected one of: base, avx2");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "rlse_fast CPU kernels (see rlse_fast/ops/cpp_ops.py)";
    rlse::bindings::define_ops<CpuBackend>(m);
    m.def("modulate", &modulate, "StyleGAN2's weight modulation and demodulation, fused: (out, dcoef)",
          py::arg("weight"), py::arg("styles"), py::arg("demodulate"), py::arg("eps"));
    m.def("modulate_backward", &modulate_backward, "gradient of modulate: (dweight per sample, dstyles)",
          py::arg("grad"), py::arg("weight"), py::arg("styles"), py::arg("dcoef"), py::arg("demodulate"),
          py::arg("need_dw"), py::arg("need_ds"));
    m.def("adain", &adain, "StyleGAN v1's layer epilogue: (y, plane stats)", py::arg("x"), py::arg("noise"),
          py::arg("strength"), py::arg("bias"), py::arg("scale"), py::arg("shift"), py::arg("eps"), py::arg("alpha"));
    m.def("adain_backward", &adain_backward, "gradient of adain: (du, plane sums)", py::arg("dy"), py::arg("x"),
          py::arg("noise"), py::arg("strength"), py::arg("bias"), py::arg("scale"), py::arg("stats"),
          py::arg("alpha"));
    m.def("cpu_isa", &cpu_isa, "the instruction set of the kernels in use: 'avx2' or 'base'");
    m.def("cpu_isas", &cpu_isas, "the kernel builds this CPU can run");
    m.def("set_cpu_isa", &set_cpu_isa, "use the kernel build `name`; returns the previous one", py::arg("name"));
}
