// Python bindings of the CUDA extension rlse_fast._cuda, the only CUDA-side file that includes
// torch/extension.h: the ops of csrc/common/ops_bindings.h (the same functions and checks as the
// CPU module rlse_fast._C) over the CUDA kernels of csrc/cuda/*.cu. Each op runs on the current
// stream of the input's device under a device guard.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "../common/ops_bindings.h"

namespace {

void* current_stream() { return static_cast<void*>(at::cuda::getCurrentCUDAStream().stream()); }

struct CudaBackend {
    // The fused bias gradient runs a block per channel: below this many channels, or above this
    // many elements per channel (64 per thread), ATen's reduction fills the GPU better.
    static constexpr int64_t kFusedDbMinChannels = 128;
    static constexpr int64_t kFusedDbMaxRun = 1 << 14;
    static constexpr int64_t kMaxTaps = 2048;  // downsample_loss keeps the taps in shared memory
    static constexpr bool kNeedsDiff = true;   // the forward kernel always writes diff
    static constexpr bool kNhwcUpfirdn2d = true;

    using Guard = at::cuda::OptionalCUDAGuard;

    static void check_device(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name) {
        TORCH_CHECK(t.is_cuda(), op, ": ", name, " must be a CUDA tensor, got one on ", t.device());
        TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " must be on ", ref.device(),
                    " like the input, got ", t.device());
    }

    template <class T> static void bias_act(const bias_act_kernel_params& p) {
        bias_act_cuda<T>(p, current_stream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    template <class T> static void upfirdn2d(const upfirdn2d_kernel_params& p) {
        upfirdn2d_cuda<T>(p, current_stream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    template <class T> static void downsample_loss(const downsample_loss_kernel_params& p) {
        downsample_loss_cuda<T>(p, current_stream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    template <class T> static void downsample_loss_backward(const downsample_loss_kernel_params& p) {
        downsample_loss_backward_cuda<T>(p, current_stream());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "rlse_fast CUDA kernels (see rlse_fast/ops/cuda_ops.py)";
    rlse::bindings::define_ops<CudaBackend>(m);
}
