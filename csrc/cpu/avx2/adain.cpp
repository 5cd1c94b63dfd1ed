// ../adain.cpp built once more for AVX2 + F16C, in namespace rlse::avx2 (see ../cpu_isa.h).
// Empty off x86-64, where dispatch.cpp only calls the baseline build.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define RLSE_CPU_AVX2 1
#include "../adain.cpp"
#endif
