// The public CPU launchers (bias_act_cpu<T>, upfirdn2d_cpu<T>, downsample_loss_cpu<T>,
// downsample_loss_backward_cpu<T>, modulate_cpu<T>, modulate_backward_cpu<T>, adain_cpu<T>,
// adain_backward_cpu<T>): each sends the call to the build of the kernels chosen by
// rlse::cpu_isa() (see cpu_isa.h).
#include "adain.h"
#include "bias_act.h"
#include "cpu_isa.h"
#include "downsample_loss.h"
#include "modulate.h"
#include "upfirdn2d.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define RLSE_HAVE_AVX2_BUILD 1  // csrc/cpu/avx2/*.cpp compile to the avx2 kernels
#endif

#define RLSE_DECLARE_CPU_KERNELS(ns)                                                        \
    namespace rlse {                                                                        \
    namespace ns {                                                                          \
    template <class T> void bias_act_cpu(const bias_act_kernel_params& p);                  \
    template <class T> void upfirdn2d_cpu(const upfirdn2d_kernel_params& p);                \
    template <class T> void downsample_loss_cpu(const downsample_loss_kernel_params& p);    \
    template <class T> void downsample_loss_backward_cpu(const downsample_loss_kernel_params& p); \
    template <class T> void modulate_cpu(const modulate_kernel_params& p);                  \
    template <class T> void modulate_backward_cpu(const modulate_kernel_params& p);         \
    template <class T> void adain_cpu(const adain_kernel_params& p);                        \
    template <class T> void adain_backward_cpu(const adain_kernel_params& p);               \
    }                                                                                       \
    }

RLSE_DECLARE_CPU_KERNELS(base)
#ifdef RLSE_HAVE_AVX2_BUILD
RLSE_DECLARE_CPU_KERNELS(avx2)
#endif

namespace rlse {
namespace {

std::atomic<int> g_isa{-1};  // -1: not chosen yet

CpuIsa choose() {
    const char* env = std::getenv("RLSE_CPU_ISA");
    if (env && std::strcmp(env, "base") == 0) return CpuIsa::kBase;
    // "auto", "avx2" or unset: the best the CPU runs ("avx2" on a CPU without it falls back too).
    return cpu_isa_supported(CpuIsa::kAvx2) ? CpuIsa::kAvx2 : CpuIsa::kBase;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::kAvx2 ? "avx2" : "base"; }

bool cpu_isa_supported(CpuIsa isa) {
    if (isa == CpuIsa::kBase) return true;
#ifdef RLSE_HAVE_AVX2_BUILD
    // __builtin_cpu_supports also requires the OS to save the AVX state (XGETBV).
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    return avx2;
#else
    return false;
#endif
}

CpuIsa cpu_isa() {
    int v = g_isa.load(std::memory_order_relaxed);
    if (v < 0) {
        v = static_cast<int>(choose());
        g_isa.store(v, std::memory_order_relaxed);
    }
    return static_cast<CpuIsa>(v);
}

bool set_cpu_isa(CpuIsa isa) {
    if (!cpu_isa_supported(isa)) return false;
    g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
    return true;
}

}  // namespace rlse

#ifdef RLSE_HAVE_AVX2_BUILD
#define RLSE_CPU_CALL(fn, T, p) \
    (rlse::cpu_isa() == rlse::CpuIsa::kAvx2 ? rlse::avx2::fn<T>(p) : rlse::base::fn<T>(p))
#else
#define RLSE_CPU_CALL(fn, T, p) rlse::base::fn<T>(p)
#endif

template <class T> void bias_act_cpu(const bias_act_kernel_params& p) { RLSE_CPU_CALL(bias_act_cpu, T, p); }
template <class T> void upfirdn2d_cpu(const upfirdn2d_kernel_params& p) { RLSE_CPU_CALL(upfirdn2d_cpu, T, p); }
template <class T> void downsample_loss_cpu(const downsample_loss_kernel_params& p) {
    RLSE_CPU_CALL(downsample_loss_cpu, T, p);
}
template <class T> void downsample_loss_backward_cpu(const downsample_loss_kernel_params& p) {
    RLSE_CPU_CALL(downsample_loss_backward_cpu, T, p);
}

template <class T> void modulate_cpu(const modulate_kernel_params& p) { RLSE_CPU_CALL(modulate_cpu, T, p); }
template <class T> void modulate_backward_cpu(const modulate_kernel_params& p) {
    RLSE_CPU_CALL(modulate_backward_cpu, T, p);
}

template <class T> void adain_cpu(const adain_kernel_params& p) { RLSE_CPU_CALL(adain_cpu, T, p); }
template <class T> void adain_backward_cpu(const adain_kernel_params& p) { RLSE_CPU_CALL(adain_backward_cpu, T, p); }

#define RLSE_INSTANTIATE(T)                                                             \
    template void bias_act_cpu<T>(const bias_act_kernel_params&);                       \
    template void upfirdn2d_cpu<T>(const upfirdn2d_kernel_params&);                     \
    template void downsample_loss_cpu<T>(const downsample_loss_kernel_params&);         \
    template void downsample_loss_backward_cpu<T>(const downsample_loss_kernel_params&); \
    template void modulate_cpu<T>(const modulate_kernel_params&);                       \
    template void modulate_backward_cpu<T>(const modulate_kernel_params&);              \
    template void adain_cpu<T>(const adain_kernel_params&);                             \
    template void adain_backward_cpu<T>(const adain_kernel_params&);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE
