// Conversions between the storage types (float, double, c10::Half, c10::BFloat16) and the
// accumulation type of the CPU kernels, written so that gcc vectorises them: c10's own conversions
// are not vectorised in loops without -mf16c, which made fp16 kernels 7x slower than fp32.
// Same results as c10: IEEE round-to-nearest-even, subnormals kept, NaN -> quiet NaN.
#pragma once
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>

namespace rlse {

inline float f32_from_bits(uint32_t w) {
    float f;
    std::memcpy(&f, &w, sizeof f);
    return f;
}

inline uint32_t f32_to_bits(float f) {
    uint32_t w;
    std::memcpy(&w, &f, sizeof w);
    return w;
}

// IEEE half -> float: normal values by rebiasing the exponent with a multiply, subnormals by a
// magic-number subtraction, picked by an integer select (the algorithm of the FP16 library).
inline float half_to_float(uint16_t h) {
    const uint32_t w = uint32_t(h) << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t bits = two_w < (1u << 27) ? f32_to_bits(denormalized) : f32_to_bits(normalized);
    return f32_from_bits(sign | bits);
}

// float -> IEEE half, round to nearest even; overflow to inf, NaN to 0x7E00.
inline uint16_t float_to_half(float f) {
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = f32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    bias = bias < 0x71000000u ? 0x71000000u : bias;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_to_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

inline float bfloat16_to_float(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// float -> bfloat16, round to nearest even; NaN to 0x7FC0.
inline uint16_t float_to_bfloat16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint32_t rounded = (u + ((u >> 16) & 1u) + 0x7FFFu) >> 16;
    return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
}

// load<A>(v): a stored value in the accumulation type A; store<T>(a): back to the storage type T.
template <class A, class T> inline A load(T v) { return static_cast<A>(v); }
template <> inline float load<float, c10::Half>(c10::Half v) { return half_to_float(v.x); }
template <> inline float load<float, c10::BFloat16>(c10::BFloat16 v) { return bfloat16_to_float(v.x); }

template <class T, class A> inline T store(A v) { return static_cast<T>(v); }
template <> inline c10::Half store<c10::Half, float>(float v) { return c10::Half(float_to_half(v), c10::Half::from_bits()); }
template <> inline c10::BFloat16 store<c10::BFloat16, float>(float v) {
    return c10::BFloat16(float_to_bfloat16(v), c10::BFloat16::from_bits());
}

}  // namespace rlse
