// Run-time choice of the CPU kernels' instruction set.
//
// Each kernel file csrc/cpu/<op>.cpp is compiled twice. Built as itself, it targets the baseline of
// the platform (SSE2 on x86-64): its functions live in namespace rlse::base. On x86-64 it is built
// again through csrc/cpu/avx2/<op>.cpp, which defines RLSE_CPU_AVX2 and includes it. Then its
// functions carry target("avx2,f16c") and live in namespace rlse::avx2. csrc/cpu/dispatch.cpp
// defines the public launchers (bias_act_cpu<T>, ...) and sends each call to one build. It picks
// avx2 when the CPU has AVX2 and F16C, unless RLSE_CPU_ISA=base or set_cpu_isa says otherwise.
//
// What AVX2 buys: twice the vector width in every loop, and fp16 conversions in hardware (F16C).
// The software conversion of fp_convert.h made fp16 kernels 5x slower than the reference. FMA is
// left out on purpose: without contraction, both builds do the same operations in the same order,
// so their results are bit-identical (tests/test_ops_cpu.py checks this).
//
// Layout of a kernel file: includes first (standard, c10 and our headers, outside the target
// region, so that no inline function of a header is compiled for AVX2 only), then
//     RLSE_ISA_BEGIN namespace rlse { namespace RLSE_ISA { ... } } RLSE_ISA_END
#pragma once
#include "fp_convert.h"
#include "kernel_dtypes.h"

#include <cstdint>
#include <type_traits>

#if defined(RLSE_CPU_AVX2)
#include <immintrin.h>
#define RLSE_ISA avx2
#if defined(__clang__)
#define RLSE_ISA_BEGIN \
    _Pragma("clang attribute push (__attribute__((target(\"avx2,f16c\"))), apply_to = function)")
#define RLSE_ISA_END _Pragma("clang attribute pop")
#else
#define RLSE_ISA_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,f16c\")")
#define RLSE_ISA_END _Pragma("GCC pop_options")
#endif
#else
#define RLSE_ISA base
#define RLSE_ISA_BEGIN
#define RLSE_ISA_END
#endif

namespace rlse {

// The builds, by the names RLSE_CPU_ISA and set_cpu_isa take.
enum class CpuIsa : int { kBase = 0, kAvx2 = 1 };

const char* cpu_isa_name(CpuIsa isa);
// Whether this build of the extension has the kernels for `isa` and this CPU can run them.
bool cpu_isa_supported(CpuIsa isa);
// The build in use: the first call chooses it from the CPU and the RLSE_CPU_ISA environment variable
// ("auto", the default, or "base" / "avx2").
CpuIsa cpu_isa();
// Switch builds (for tests and benchmarks). Returns false, changing nothing, when `isa` is unsupported.
bool set_cpu_isa(CpuIsa isa);

}  // namespace rlse

RLSE_ISA_BEGIN
namespace rlse {
namespace RLSE_ISA {

// dst[0, n) = src[0, n) in the accumulation type A (float for fp16 / bf16).
template <class A, class T>
inline void load_row(const T* __restrict src, A* __restrict dst, int64_t n) {
    int64_t i = 0;
#if defined(RLSE_CPU_AVX2)
    if constexpr (std::is_same<T, c10::Half>::value && std::is_same<A, float>::value) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    }
    if constexpr (std::is_same<T, c10::BFloat16>::value && std::is_same<A, float>::value) {
        for (; i + 8 <= n; i += 8) {  // the 16 bits are the top half of the float
            const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
        }
    }
#endif
    for (; i < n; i++) dst[i] = load<A>(src[i]);
}

// dst[0, n) = src[0, n) rounded to the storage type T (round to nearest even).
template <class T, class A>
inline void store_row(const A* __restrict src, T* __restrict dst, int64_t n) {
    int64_t i = 0;
#if defined(RLSE_CPU_AVX2)
    if constexpr (std::is_same<T, c10::Half>::value && std::is_same<A, float>::value) {
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                             _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    if constexpr (std::is_same<T, c10::BFloat16>::value && std::is_same<A, float>::value) {
        // float_to_bfloat16 of fp_convert.h, 8 lanes at a time: round to nearest even, NaN -> 0x7FC0.
        const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7FFF);
        const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
        const __m256i qnan = _mm256_set1_epi32(0x7FC0);
        for (; i + 8 <= n; i += 8) {
            const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i));
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, half), lsb), 16);
            const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);  // signed compare: fine, both >= 0
            r = _mm256_blendv_epi8(r, qnan, nan);
            // Pack the 8 low halves (per 128-bit lane, then put the lanes' results side by side).
            const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_castsi256_si128(packed));
        }
    }
#endif
    for (; i < n; i++) dst[i] = store<T>(src[i]);
}

// A row in the accumulation type: the row itself when T == A, else converted into buf.
template <class T, class A>
inline const A* row_as(const T* src, int64_t n, A* buf) {
    if constexpr (std::is_same<T, A>::value) {
        return src;
    } else {
        load_row(src, buf, n);
        return buf;
    }
}

}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
