// CPU kernels of the fused weight modulation (csrc/common/modulate.h). One OpenMP work item per
// output channel of a sample: its row of I * K weights is modulated into a thread-local buffer,
// summed, then scaled and stored (forward), or recomputed, reduced against the gradient and turned
// into dW and per-input-channel partial sums of ds (backward; a second pass adds the partial sums
// over the output channels). The styles are expanded to the row's layout once per sample, so every
// loop runs over a flat row and vectorises. Math in float (double for double).
#include "modulate.h"

#include "cpu_isa.h"
#include "kernel_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

RLSE_ISA_BEGIN
namespace rlse {
namespace RLSE_ISA {
namespace {

// A thread's styles of one sample, one per weight of a row: se[i * K + k] = s[b, i]. Rows come in
// order within a thread's share, so they are expanded again only when the sample changes.
template <class A>
struct RowStyles {
    std::vector<A> se;
    int64_t b = -1;
    explicit RowStyles(int64_t n) : se(n) {}

    template <class T>
    const A* of(const T* s, int64_t sample, int64_t I, int64_t K) {
        if (sample != b) {
            for (int64_t i = 0; i < I; i++) {
                const A v = load<A>(s[sample * I + i]);
                for (int64_t k = 0; k < K; k++) se[i * K + k] = v;
            }
            b = sample;
        }
        return se.data();
    }
};

}  // namespace

template <class T>
void modulate_cpu(const modulate_kernel_params& p) {
    using A = typename Acc<T>::type;
    const T* w = static_cast<const T*>(p.w);
    const T* s = static_cast<const T*>(p.s);
    T* out = static_cast<T*>(p.out);
    A* dcoef = static_cast<A*>(p.dcoef);
    const int64_t B = p.batch, O = p.out_channels, I = p.in_channels, K = p.taps, n = I * K;
    const int64_t wstride = p.wbatch == 1 ? 0 : O * n;
    const A eps = static_cast<A>(p.eps);
    const int64_t rows = B * O;

#pragma omp parallel if (rows > 1 && rows * n > 32768)
    {
        RowStyles<A> styles(n);
        std::vector<A> wr(n), ws(n);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t b = r / O, o = r % O;
            const A* __restrict e = styles.of(s, b, I, K);
            const A* __restrict a = row_as(w + b * wstride + o * n, n, wr.data());
            A* __restrict m = ws.data();
            for (int64_t j = 0; j < n; j++) m[j] = a[j] * e[j];
            A d = A(1);
            if (p.demodulate) {
                d = A(1) / std::sqrt(dot8(m, m, n) + eps);
                dcoef[r] = d;
                for (int64_t j = 0; j < n; j++) m[j] *= d;
            }
            store_row(m, out + r * n, n);
        }
    }
}

template <class T>
void modulate_backward_cpu(const modulate_kernel_params& p) {
    using A = typename Acc<T>::type;
    const T* w = static_cast<const T*>(p.w);
    const T* s = static_cast<const T*>(p.s);
    const T* g = static_cast<const T*>(p.g);
    const A* dcoef = static_cast<const A*>(p.dcoef);
    T* dw = static_cast<T*>(p.dw);
    A* ds = static_cast<A*>(p.ds);
    A* partial = static_cast<A*>(p.partial);
    const int64_t B = p.batch, O = p.out_channels, I = p.in_channels, K = p.taps, n = I * K;
    const int64_t wstride = p.wbatch == 1 ? 0 : O * n;
    const int64_t rows = B * O;

#pragma omp parallel if (rows > 1 && rows * n > 32768)
    {
        RowStyles<A> styles(n);
        std::vector<A> wr(n), gr(n), t(n);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t b = r / O, o = r % O;
            const A* __restrict e = styles.of(s, b, I, K);
            const A* __restrict a = row_as(w + b * wstride + o * n, n, wr.data());
            const A* __restrict gg = row_as(g + r * n, n, gr.data());
            A* __restrict x = t.data();
            if (p.demodulate) {
                // dws = d * g - d^3 * t * ws, with ws = W * s recomputed and t = sum(g * ws).
                for (int64_t j = 0; j < n; j++) x[j] = a[j] * e[j];
                const A d = dcoef[r];
                const A c = -d * d * d * dot8(gg, x, n);
                for (int64_t j = 0; j < n; j++) x[j] = d * gg[j] + c * x[j];
            } else {
                for (int64_t j = 0; j < n; j++) x[j] = gg[j];
            }
            if (ds != nullptr) {  // per input channel: sum over the taps of dws * W
                A* pr = partial + r * I;
                for (int64_t i = 0; i < I; i++) {
                    A acc = A(0);
                    for (int64_t k = 0; k < K; k++) acc += x[i * K + k] * a[i * K + k];
                    pr[i] = acc;
                }
            }
            if (dw != nullptr) {
                for (int64_t j = 0; j < n; j++) x[j] *= e[j];
                store_row(x, dw + r * n, n);
            }
        }
        if (ds != nullptr) {
#pragma omp for schedule(static)
            for (int64_t q = 0; q < B * I; q++) {
                const int64_t b = q / I, i = q % I;
                A acc = A(0);
                for (int64_t o = 0; o < O; o++) acc += partial[(b * O + o) * I + i];
                ds[q] = acc;
            }
        }
    }
}

#define RLSE_INSTANTIATE(T) \
    template void modulate_cpu<T>(const modulate_kernel_params&); \
    template void modulate_backward_cpu<T>(const modulate_kernel_params&);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE

}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
