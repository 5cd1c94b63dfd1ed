// The storage dtypes every kernel is instantiated for, on the CPU and on CUDA alike: float32,
// float64, float16 and bfloat16, the four the bindings accept. RLSE_FOR_EACH_KERNEL_DTYPE(M) expands
// M(T) for each, so that a kernel file instantiates its launchers for exactly this list.
#pragma once
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#define RLSE_FOR_EACH_KERNEL_DTYPE(M) M(float) M(double) M(c10::Half) M(c10::BFloat16)
