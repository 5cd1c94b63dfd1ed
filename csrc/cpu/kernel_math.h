// Small arithmetic helpers of the CPU kernel files, compiled once per build like the kernels
// themselves: the definitions sit inside the ISA region and namespace (see cpu_isa.h), in an
// anonymous namespace, so the baseline and AVX2 builds each get their own vectorised copy and no
// inline function is shared between them. Include it after the standard and c10 headers.
#pragma once
#include "cpu_isa.h"

#include <cstdint>

RLSE_ISA_BEGIN
namespace rlse {
namespace RLSE_ISA {
namespace {

// The accumulation type: float for every storage type except double.
template <class T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

// Sum of a[j] * b[j] with 8 independent partial sums, so that it vectorises without -ffast-math
// (and both builds add in the same order: bit-identical results).
template <class A>
inline A dot8(const A* __restrict a, const A* __restrict b, int64_t n) {
    A lanes[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lanes[l] += a[j + l] * b[j + l];
    A s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

}  // namespace
}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
