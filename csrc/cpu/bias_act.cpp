// CPU kernel of bias_act: one pass, OpenMP over blocks of the flat index, vectorisable inner loops.
// Math in float (double for double) for every storage type.
#include "bias_act.h"

#include "cpu_isa.h"
#include "kernel_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

RLSE_ISA_BEGIN
namespace rlse {
namespace RLSE_ISA {
namespace {

constexpr int64_t kBlock = 8192;  // elements per OpenMP work item
constexpr int64_t kTile = 256;    // elements per conversion tile of an fp16 / bf16 run (a multiple of 8)

// The value of one element: the forward output (GRAD = 0) or the gradient (GRAD = 1, x is dy).
template <int ACT, int GRAD, bool CLAMP, bool XREF, class A>
inline A element(A v, A xr, A yr, A b, A alpha, A gain, A clamp) {
    if (GRAD == 0) {
        v += b;
        if (ACT == kBiasActRelu) v = v < A(0) ? A(0) : v;
        // Written as selects of existing values and unconditional arithmetic: gcc (with its default
        // -ftrapping-math) will not if-convert `v < 0 ? v * alpha : v`, and a branch per element is
        // 20x slower. Exact: one of the two terms is 0.
        if (ACT == kBiasActLrelu) v = std::max(v, A(0)) + alpha * std::min(v, A(0));
        v *= gain;
        if (CLAMP) v = std::min(std::max(v, -clamp), clamp);
        return v;
    }
    // Pre-activation value (XREF) or a value of the same sign (yref * gain, for alpha >= 0).
    A pre = A(0);
    if (XREF) pre = xr + b;
    else if (ACT != kBiasActLinear) pre = yr * gain;
    if (ACT == kBiasActRelu) v = pre > A(0) ? v : A(0);
    if (ACT == kBiasActLrelu) v = (pre > A(0) ? v : A(0)) + alpha * (pre > A(0) ? A(0) : v);
    v *= gain;
    if (CLAMP) {  // XREF: recompute the unclamped output; torch.clamp passes the gradient at the bounds
        A z = pre;
        if (ACT == kBiasActRelu) z = std::max(z, A(0));
        if (ACT == kBiasActLrelu) z = std::max(z, A(0)) + alpha * std::min(z, A(0));
        z *= gain;
        v = std::abs(z) <= clamp ? v : A(0);  // one compare: `a && b` becomes a branch
    }
    return v;
}

template <bool XREF, bool YREF, class T, class A>
inline void load_refs(const T* xref, const T* yref, int64_t i, A& xr, A& yr) {
    xr = XREF ? load<A>(xref[i]) : A(0);
    yr = YREF ? load<A>(yref[i]) : A(0);
}

// One run of elements [0, n) that share a bias (BARR = false: scalar `bias`) or index a bias
// array element by element (BARR = true: `barr`, when the bias dimension is the innermost).
// Stored and computed in the same type A.
template <int ACT, int GRAD, bool CLAMP, bool XREF, bool BARR, class A>
void run_same(const A* __restrict x, const A* __restrict xref, const A* __restrict yref, A* __restrict y,
              int64_t n, A bias, const A* __restrict barr, A alpha, A gain, A clamp) {
    constexpr bool YREF = GRAD == 1 && !XREF && ACT != kBiasActLinear;
    for (int64_t i = 0; i < n; i++) {
        A xr, yr;
        load_refs<XREF, YREF>(xref, yref, i, xr, yr);
        const A b = BARR ? barr[i] : bias;
        y[i] = element<ACT, GRAD, CLAMP, XREF>(x[i], xr, yr, b, alpha, gain, clamp);
    }
}

// The same for any storage type T: fp16 / bf16 runs go through float tiles (load_row / store_row,
// in hardware with F16C), so that the loop above is the only arithmetic loop and vectorises.
template <int ACT, int GRAD, bool CLAMP, bool XREF, bool BARR, class T, class A>
void run(const T* __restrict x, const T* __restrict xref, const T* __restrict yref, T* __restrict y,
         int64_t n, A bias, const T* __restrict barr, A alpha, A gain, A clamp) {
    if constexpr (std::is_same<T, A>::value) {
        run_same<ACT, GRAD, CLAMP, XREF, BARR>(x, xref, yref, y, n, bias, barr, alpha, gain, clamp);
    } else {
        constexpr bool YREF = GRAD == 1 && !XREF && ACT != kBiasActLinear;
        A xb[kTile], rb[kTile], bb[kTile], yb[kTile];
        for (int64_t i0 = 0; i0 < n; i0 += kTile) {
            const int64_t m = std::min(kTile, n - i0);
            load_row(x + i0, xb, m);
            if (XREF) load_row(xref + i0, rb, m);
            if (YREF) load_row(yref + i0, rb, m);
            if (BARR) load_row(barr + i0, bb, m);
            run_same<ACT, GRAD, CLAMP, XREF, BARR>(xb, XREF ? rb : nullptr, YREF ? rb : nullptr, yb, m, bias, bb,
                                                   alpha, gain, clamp);
            store_row(yb, y + i0, m);
        }
    }
}

template <class A>
inline void add_lanes(A (&lanes)[8], const A* __restrict v, int64_t n8) {
    for (int64_t i = 0; i < n8; i += 8)
        for (int l = 0; l < 8; l++) lanes[l] += v[i + l];
}

// Sum of n stored values with 8 independent partial sums (vectorises without -ffast-math); fp16 /
// bf16 values are converted a tile at a time, the sum order is the same.
template <class T, class A>
A lane_sum(const T* __restrict v, int64_t n) {
    A lanes[8] = {};
    const int64_t n8 = n / 8 * 8;
    if constexpr (std::is_same<T, A>::value) {
        add_lanes(lanes, v, n8);
    } else {
        A buf[kTile];
        for (int64_t i0 = 0; i0 < n8; i0 += kTile) {
            const int64_t m = std::min(kTile, n8 - i0);
            load_row(v + i0, buf, m);
            add_lanes(lanes, buf, m);
        }
    }
    A s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (int64_t i = n8; i < n; i++) s += load<A>(v[i]);
    return s;
}

// The gradient of a run with the sum of the stored values: 8 independent partial sums, so that
// the loop still vectorises without -ffast-math. (For fp16/bf16, gcc does not vectorise the fused
// loop, so the run is written first and summed from cache.)
template <int ACT, bool CLAMP, bool XREF, class T, class A>
A run_grad_sum(const T* __restrict x, const T* __restrict xref, const T* __restrict yref, T* __restrict y,
               int64_t n, A bias, A alpha, A gain, A clamp) {
    if constexpr (!std::is_same<T, A>::value) {
        run<ACT, 1, CLAMP, XREF, false>(x, xref, yref, y, n, bias, static_cast<const T*>(nullptr), alpha, gain,
                                        clamp);
        return lane_sum<T, A>(y, n);
    }
    constexpr bool YREF = !XREF && ACT != kBiasActLinear;
    A lanes[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) {
            A xr, yr;
            load_refs<XREF, YREF>(xref, yref, i + l, xr, yr);
            const T out = store<T>(element<ACT, 1, CLAMP, XREF>(load<A>(x[i + l]), xr, yr, bias, alpha, gain, clamp));
            y[i + l] = out;
            lanes[l] += load<A>(out);
        }
    }
    A s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < n; i++) {
        A xr, yr;
        load_refs<XREF, YREF>(xref, yref, i, xr, yr);
        const T out = store<T>(element<ACT, 1, CLAMP, XREF>(load<A>(x[i]), xr, yr, bias, alpha, gain, clamp));
        y[i] = out;
        s += load<A>(out);
    }
    return s;
}

// Gradient with the bias gradient fused. Each thread owns a range of channels and walks the tensor
// in memory order (outer index, then its channels), so that reads stream through memory; db[c] is
// summed in a fixed order (by outer index) whatever the thread count, so it is deterministic.
template <int ACT, bool CLAMP, bool XREF, class T>
void launch_grad_db(const bias_act_kernel_params& p) {
    using A = typename Acc<T>::type;
    const T* x = static_cast<const T*>(p.x);
    const T* b = static_cast<const T*>(p.b);
    const T* xref = static_cast<const T*>(p.xref);
    const T* yref = static_cast<const T*>(p.yref);
    T* y = static_cast<T*>(p.y);
    A* db = static_cast<A*>(p.db);
    const A alpha = load<A>(p.alpha), gain = load<A>(p.gain), clamp = load<A>(p.clamp);
    const int64_t outer = p.sizeX / (p.sizeB * p.stepB);

#pragma omp parallel if (p.sizeB > 1 && p.sizeX > kBlock)
    {
        int64_t nt = 1, tid = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        tid = omp_get_thread_num();
#endif
        const int64_t c0 = p.sizeB * tid / nt, c1 = p.sizeB * (tid + 1) / nt;
        std::vector<double> total(c1 - c0, 0.0);
        for (int64_t o = 0; o < outer; o++) {
            for (int64_t c = c0; c < c1; c++) {
                const int64_t i = (o * p.sizeB + c) * p.stepB;
                const A bias = (XREF && b) ? load<A>(b[c]) : A(0);
                total[c - c0] += run_grad_sum<ACT, CLAMP, XREF>(x + i, xref ? xref + i : nullptr,
                                                                yref ? yref + i : nullptr, y + i, p.stepB, bias,
                                                                alpha, gain, clamp);
            }
        }
        for (int64_t c = c0; c < c1; c++) db[c] = load<A>(total[c - c0]);
    }
}

template <int ACT, int GRAD, bool CLAMP, bool XREF, class T>
void launch(const bias_act_kernel_params& p) {
    if (GRAD == 1 && p.db != nullptr) return launch_grad_db<ACT, CLAMP, XREF, T>(p);
    using A = typename Acc<T>::type;
    const T* x = static_cast<const T*>(p.x);
    const T* b = static_cast<const T*>(p.b);
    const T* xref = static_cast<const T*>(p.xref);
    const T* yref = static_cast<const T*>(p.yref);
    T* y = static_cast<T*>(p.y);
    const A alpha = load<A>(p.alpha), gain = load<A>(p.gain), clamp = load<A>(p.clamp);
    // The bias only matters in the forward pass and for the xref sign rule.
    const bool use_b = b != nullptr && (GRAD == 0 || XREF);
    const int64_t nblocks = (p.sizeX + kBlock - 1) / kBlock;

#pragma omp parallel for schedule(static) if (nblocks > 1)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        const int64_t end = std::min(p.sizeX, (blk + 1) * kBlock);
        for (int64_t i = blk * kBlock; i < end;) {
            if (!use_b) {
                run<ACT, GRAD, CLAMP, XREF, false>(x + i, xref ? xref + i : nullptr, yref ? yref + i : nullptr, y + i,
                                                   end - i, A(0), b, alpha, gain, clamp);
                break;
            }
            if (p.stepB == 1) {  // bias along the innermost dimension: index it per element
                const int64_t c = i % p.sizeB;
                const int64_t n = std::min(end - i, p.sizeB - c);
                run<ACT, GRAD, CLAMP, XREF, true>(x + i, xref ? xref + i : nullptr, yref ? yref + i : nullptr, y + i, n,
                                                  A(0), b + c, alpha, gain, clamp);
                i += n;
            } else {  // a run of stepB elements with one bias value
                const int64_t q = i / p.stepB;
                const int64_t n = std::min(end, (q + 1) * p.stepB) - i;
                const A bias = load<A>(b[q % p.sizeB]);
                run<ACT, GRAD, CLAMP, XREF, false>(x + i, xref ? xref + i : nullptr, yref ? yref + i : nullptr, y + i, n,
                                                   bias, b, alpha, gain, clamp);
                i += n;
            }
        }
    }
}

template <int ACT, int GRAD, class T>
void launch_clamp(const bias_act_kernel_params& p) {
    const bool xref = GRAD == 1 && p.xref != nullptr;
    if (p.clamp >= 0) {  // the gradient with a clamp needs xref (checked by the bindings)
        GRAD == 1 ? launch<ACT, GRAD, true, true, T>(p) : launch<ACT, GRAD, true, false, T>(p);
    } else {
        xref ? launch<ACT, GRAD, false, true, T>(p) : launch<ACT, GRAD, false, false, T>(p);
    }
}

template <int ACT, class T>
void launch_grad(const bias_act_kernel_params& p) {
    p.grad ? launch_clamp<ACT, 1, T>(p) : launch_clamp<ACT, 0, T>(p);
}

}  // namespace

template <class T>
void bias_act_cpu(const bias_act_kernel_params& p) {
    switch (p.act) {
        case kBiasActRelu: launch_grad<kBiasActRelu, T>(p); break;
        case kBiasActLrelu: launch_grad<kBiasActLrelu, T>(p); break;
        default: launch_grad<kBiasActLinear, T>(p); break;
    }
}

#define RLSE_INSTANTIATE(T) \
    template void bias_act_cpu<T>(const bias_act_kernel_params&);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE

}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
