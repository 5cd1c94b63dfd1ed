// CPU kernels of StyleGAN v1's layer epilogue (csrc/common/adain.h). One OpenMP work item per plane:
// its u = x + noise * strength + bias is formed once into a thread-local buffer in the accumulation
// type (float; double for double), then every pass runs over flat rows and vectorises. The mean and
// the variance take two passes over the buffer (no cancellation); the backward pass reduces the
// plane sums G and P first, then writes du and its two sums in one pass.
#include "adain.h"

#include "cpu_isa.h"
#include "kernel_math.h"

#include <cmath>
#include <cstdint>
#include <vector>

RLSE_ISA_BEGIN
namespace rlse {
namespace RLSE_ISA {
namespace {

// Sum with 8 independent partial sums (vectorises without -ffast-math; both builds add alike).
template <class A>
inline A sum8(const A* __restrict a, int64_t n) {
    A lanes[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lanes[l] += a[j + l];
    A s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; j < n; j++) s += a[j];
    return s;
}

// u[0, n) of plane r into `u` (noise row converted through `nbuf`).
template <class T, class A>
void plane_u(const adain_kernel_params& p, int64_t r, A* __restrict u, A* nbuf) {
    const int64_t n = p.n;
    load_row(static_cast<const T*>(p.x) + r * n, u, n);
    const A b = static_cast<const A*>(p.bias)[r];
    if (p.noise != nullptr) {
        const A s = static_cast<const A*>(p.strength)[r];
        const A* __restrict nz = row_as(static_cast<const T*>(p.noise) + (r / p.channels) * p.noise_bstride, n, nbuf);
        for (int64_t i = 0; i < n; i++) u[i] = u[i] + nz[i] * s + b;
    } else {
        for (int64_t i = 0; i < n; i++) u[i] = u[i] + b;
    }
}

}  // namespace

template <class T>
void adain_cpu(const adain_kernel_params& p) {
    using A = typename Acc<T>::type;
    const int64_t n = p.n;
    const A alpha = static_cast<A>(p.alpha), eps = static_cast<A>(p.eps);
    A* stats = static_cast<A*>(p.stats);
#pragma omp parallel if (p.planes > 1 && p.planes * n > 32768)
    {
        std::vector<A> ub(n), nb(n);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < p.planes; r++) {
            A* __restrict v = ub.data();
            plane_u<T>(p, r, v, nb.data());
            for (int64_t i = 0; i < n; i++) v[i] = v[i] > A(0) ? v[i] : v[i] * alpha;
            const A mean = sum8(v, n) / A(n);
            for (int64_t i = 0; i < n; i++) v[i] -= mean;
            const A rstd = A(1) / std::sqrt(dot8(v, v, n) / A(n) + eps);
            stats[2 * r] = mean;
            stats[2 * r + 1] = rstd;
            const A sc = static_cast<const A*>(p.scale)[r] * rstd, sh = static_cast<const A*>(p.shift)[r];
            for (int64_t i = 0; i < n; i++) v[i] = v[i] * sc + sh;
            store_row(v, static_cast<T*>(p.y) + r * n, n);
        }
    }
}

template <class T>
void adain_backward_cpu(const adain_kernel_params& p) {
    using A = typename Acc<T>::type;
    const int64_t n = p.n;
    const A alpha = static_cast<A>(p.alpha);
    const A* stats = static_cast<const A*>(p.stats);
    A* sums = static_cast<A*>(p.sums);
#pragma omp parallel if (p.planes > 1 && p.planes * n > 32768)
    {
        std::vector<A> ub(n), hb(n), gb(n), nb(n);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < p.planes; r++) {
            A* __restrict u = ub.data();
            A* __restrict xh = hb.data();
            plane_u<T>(p, r, u, nb.data());
            const A mean = stats[2 * r], rstd = stats[2 * r + 1];
            for (int64_t i = 0; i < n; i++) xh[i] = ((u[i] > A(0) ? u[i] : u[i] * alpha) - mean) * rstd;
            const A* __restrict g = row_as(static_cast<const T*>(p.g) + r * n, n, gb.data());
            const A G = sum8(g, n), P = dot8(g, xh, n);
            const A k = rstd * static_cast<const A*>(p.scale)[r], gm = G / A(n), pm = P / A(n);
            // du overwrites x_hat: each element is read before it is written.
            for (int64_t i = 0; i < n; i++) {
                const A dv = k * (g[i] - gm - xh[i] * pm);
                xh[i] = u[i] > A(0) ? dv : dv * alpha;
            }
            sums[r] = G;
            sums[1 * p.planes + r] = P;
            sums[2 * p.planes + r] = sum8(xh, n);
            sums[3 * p.planes + r] = A(0);
            if (p.noise != nullptr) {
                const A* nz = row_as(static_cast<const T*>(p.noise) + (r / p.channels) * p.noise_bstride, n, nb.data());
                sums[3 * p.planes + r] = dot8(xh, nz, n);
            }
            store_row(xh, static_cast<T*>(p.y) + r * n, n);
        }
    }
}

#define RLSE_INSTANTIATE(T) \
    template void adain_cpu<T>(const adain_kernel_params&); \
    template void adain_backward_cpu<T>(const adain_kernel_params&);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE

}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
