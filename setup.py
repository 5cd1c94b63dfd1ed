"""Builds the native kernels at install time: `pip install --no-build-isolation .` (or `-e .`).

- `rlse_fast._C`: the CPU kernels (csrc/bindings_cpu.cpp + csrc/cpu/*.cpp), always built.
- `rlse_fast._cuda`: the CUDA kernels (csrc/cuda/*.cu + csrc/cuda/bindings_cuda.cpp), built only when
  those files exist, the installed torch is a CUDA build (torch.version.cuda) and nvcc is found
  (CUDA_HOME). A GPU is not needed to build; TORCH_CUDA_ARCH_LIST picks the architectures.

Only the bindings files include torch/extension.h; the kernel files include light headers
(c10/util/Half.h, csrc/common/*.h), which keeps the build short. Set MAX_JOBS to bound parallelism.
No -march=native: the wheel must run on other x86-64 machines. -O3 lets the compiler vectorise; the
kernels are built twice, for the baseline and for AVX2 + F16C (csrc/cpu/avx2/), and the CPU picks
one at run time (csrc/cpu/cpu_isa.h).
"""
import glob
import os
import shutil

import torch
from setuptools import setup
import torch.utils.cpp_extension as cpp_extension
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
COMMON = os.path.join("csrc", "common")


def _sources(pattern):
    # Paths relative to setup.py, as setuptools requires.
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _cpu_extension():
    return CppExtension(
        "rlse_fast._C",
        ["csrc/bindings_cpu.cpp"] + _sources("csrc/cpu/*.cpp") + _sources("csrc/cpu/avx2/*.cpp"),
        include_dirs=[os.path.join(HERE, COMMON)],
        extra_compile_args={"cxx": ["-O3", "-g0", "-fno-trapping-math", "-fopenmp"]},
        extra_link_args=["-fopenmp"],
    )


def _is_toolkit(home):
    return bool(home) and os.path.isfile(os.path.join(home, "bin", "nvcc")) and os.path.isfile(
        os.path.join(home, "include", "cuda_runtime_api.h"))


def _cuda_home():
    """The CUDA toolkit to build with: CUDA_HOME as torch found it if it holds nvcc and the CUDA headers,
    else the first that does of: the real location of the nvcc on PATH, /usr/local/cuda,
    /usr/local/cuda-*. torch guesses CUDA_HOME as two levels above the nvcc on PATH, which is wrong
    where that nvcc is a link or a wrapper script (/usr/local/bin/nvcc -> CUDA_HOME=/usr/local, whose
    include/ has no CUDA headers). The choice is handed to torch's build (its module-level CUDA_HOME)."""
    candidates = [cpp_extension.CUDA_HOME, os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for home in candidates:
        if _is_toolkit(home):
            if home != cpp_extension.CUDA_HOME:
                print(f"rlse-fast: using the CUDA toolkit at {home} (torch guessed {cpp_extension.CUDA_HOME})")
                cpp_extension.CUDA_HOME = home
                os.environ["CUDA_HOME"] = home
            return home
    return None


def _default_arch_list():
    """Without TORCH_CUDA_ARCH_LIST, torch compiles for the GPUs it sees, and with none visible (a
    container build, a login node) its build fails with an IndexError. Then build for the
    architectures this torch itself was built for, with PTX of the newest for later cards."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST") or torch.cuda.is_available():
        return
    archs = []
    for flag in torch._C._cuda_getArchFlags().split():  # e.g. "sm_80 sm_90 sm_120"
        if flag.startswith("sm_") and flag[3:].isdigit():
            archs.append(f"{flag[3:-1]}.{flag[-1]}")
    archs = archs or ["8.0", "9.0"]
    archs[-1] += "+PTX"
    os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(archs)
    print(f"rlse-fast: no GPU visible and TORCH_CUDA_ARCH_LIST unset; building for {';'.join(archs)} "
          "(set TORCH_CUDA_ARCH_LIST, e.g. 9.0, to build for one card only)")


def _cuda_extension():
    kernels = _sources("csrc/cuda/*.cu")
    bindings = os.path.join("csrc", "cuda", "bindings_cuda.cpp")
    if not kernels or not os.path.exists(os.path.join(HERE, bindings)):
        return None
    if not torch.version.cuda:
        print("rlse-fast: torch is a CPU build; skipping the CUDA extension rlse_fast._cuda")
        return None
    home = _cuda_home()
    if home is None:
        print("rlse-fast: no CUDA toolkit found (nvcc with its headers; set CUDA_HOME); skipping the CUDA "
              "extension rlse_fast._cuda")
        return None
    _default_arch_list()
    include_dirs = [os.path.join(HERE, COMMON)]
    # pip's CUDA torch wheels keep the CUDA headers under site-packages/nvidia/cu13/include.
    pip_cuda = os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia", "cu13", "include")
    if os.path.isdir(pip_cuda):
        include_dirs.append(pip_cuda)
    return CUDAExtension(
        "rlse_fast._cuda",
        [bindings] + kernels,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": ["-O3", "-g0"], "nvcc": ["-O3", "-Xcompiler", "-g0"]},
    )


ext_modules = [e for e in (_cpu_extension(), _cuda_extension()) if e is not None]

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
)
