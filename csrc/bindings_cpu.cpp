// Python bindings of the CPU extension rlse_fast._C: the ops of csrc/common/ops_bindings.h over the
// CPU kernels (csrc/cpu/), plus the choice of the kernels' instruction set (csrc/cpu/cpu_isa.h).
#include <torch/extension.h>

#include <string>
#include <vector>

#include "cpu/cpu_isa.h"
#include "ops_bindings.h"

namespace {

struct CpuBackend {
    static constexpr int64_t kFusedDbMinChannels = 1;
    static constexpr int64_t kMaxTaps = INT32_MAX / 4;
    static constexpr bool kNeedsDiff = false;

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
    m.def("cpu_isa", &cpu_isa, "the instruction set of the kernels in use: 'avx2' or 'base'");
    m.def("cpu_isas", &cpu_isas, "the kernel builds this CPU can run");
    m.def("set_cpu_isa", &set_cpu_isa, "use the kernel build `name`; returns the previous one", py::arg("name"));
}
