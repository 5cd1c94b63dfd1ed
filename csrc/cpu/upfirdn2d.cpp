// CPU kernel of upfirdn2d. OpenMP over output rows of all planes; each output row is the sum, over
// the input rows its filter taps reach, of a 1-D "row FIR" (zero insertion, pad, FIR, decimation
// along x). Separable filters first combine those input rows with the vertical taps, then run one
// row FIR. The row FIR has vectorisable paths for up=1/down=1, down=2 and up=2 (the StyleGAN2 cases,
// with an unrolled variant for their 4-tap filters) and a general per-pixel path that also takes the
// outputs at the row ends. Math in float (double for double).
#include "upfirdn2d.h"

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

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }
inline int64_t pos_mod(int64_t a, int64_t b) { return ((a % b) + b) % b; }

// First tap k >= 0 for which the zero-inserted index j0 + k falls on an input sample (j0 + k >= 0
// and divisible by u).
inline int64_t first_tap(int64_t j0, int u) { return j0 < 0 ? -j0 : pos_mod(-j0, u); }

// out[o] += sum_k t[k] * U[o * d + k - p0] for o in [0, outN), with U[j] = in[j / u] when j % u == 0
// and 0 <= j < n * u, else 0. Per output the taps are added in increasing k on every path.
template <class A>
void fir_row_general(const A* __restrict in, int64_t n, const A* __restrict t, int taps, int u, int d,
                     int64_t p0, A* __restrict out, int64_t o_begin, int64_t o_end) {
    for (int64_t o = o_begin; o < o_end; o++) {
        const int64_t j0 = o * d - p0;
        A s = out[o];
        for (int64_t k = first_tap(j0, u); k < taps; k += u) {
            const int64_t ix = (j0 + k) / u;
            if (ix >= n) break;
            s += t[k] * in[ix];
        }
        out[o] = s;
    }
}

// up = 1, down = D (D = 1 or 2 at compile time: contiguous or stride-2 loads, vectorised over o).
template <int D, class A>
void fir_row_down(const A* __restrict in, int64_t n, const A* __restrict t, int taps, int64_t p0,
                  A* __restrict out, int64_t outN) {
    for (int k = 0; k < taps; k++) {
        const A w = t[k];
        const int64_t off = k - p0;  // input index = o * D + off, valid in [0, n)
        const int64_t lo = std::max<int64_t>(0, ceil_div(-off, D));
        const int64_t hi = std::min<int64_t>(outN, ceil_div(n - off, D));
        for (int64_t o = lo; o < hi; o++) out[o] += w * in[o * D + off];
    }
}

// up = U (U = 2 at compile time, or 0 for a runtime u), down = 1: polyphase. Output o = u*m + r only
// sees the taps k with (r + k - p0) % u == 0, reading in[m + (r + k - p0) / u].
template <int U, class A>
void fir_row_up(const A* __restrict in, int64_t n, const A* __restrict t, int taps, int u_rt, int64_t p0,
                A* __restrict out, int64_t outN) {
    const int u = U ? U : u_rt;
    for (int r = 0; r < u && r < outN; r++) {
        const int64_t mcount = ceil_div(outN - r, u);  // outputs of phase r
        for (int64_t k = pos_mod(p0 - r, u); k < taps; k += u) {
            const A w = t[k];
            const int64_t off = (r + k - p0) / u;  // exact
            const int64_t lo = std::max<int64_t>(0, -off);
            const int64_t hi = std::min<int64_t>(mcount, n - off);
            for (int64_t m = lo; m < hi; m++) out[m * u + r] += w * in[m + off];
        }
    }
}

// The StyleGAN2 cases with the tap count FW known at compile time: all taps of an output in one
// unrolled sum (one pass over the row instead of FW), vectorised over the outputs; the outputs
// whose taps cross the row's ends take the general path. Same order of additions as above.
template <int D, int FW, class A>
void fir_row_down_fixed(const A* __restrict in, int64_t n, const A* __restrict t, int64_t p0, A* __restrict out,
                        int64_t outN) {
    // Interior: 0 <= o*D - p0 and o*D - p0 + FW - 1 < n.
    const int64_t lo = std::min<int64_t>(outN, std::max<int64_t>(0, ceil_div(p0, D)));
    const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(outN, floor_div(n - FW + p0, D) + 1));
    A tk[FW];
    for (int k = 0; k < FW; k++) tk[k] = t[k];
    fir_row_general(in, n, t, FW, 1, D, p0, out, 0, lo);
    for (int64_t o = lo; o < hi; o++) {
        const A* __restrict src = in + (o * D - p0);
        A s = out[o];
        for (int k = 0; k < FW; k++) s += tk[k] * src[k];
        out[o] = s;
    }
    fir_row_general(in, n, t, FW, 1, D, p0, out, hi, outN);
}

template <int U, int FW, class A>
void fir_row_up_fixed(const A* __restrict in, int64_t n, const A* __restrict t, int64_t p0, A* __restrict out,
                      int64_t outN) {
    static_assert(FW % U == 0, "taps per phase must be whole");
    constexpr int TP = FW / U;
    // Phase r (output U*m + r) uses the taps k = k0[r] + U*i, reading in[m + off[r] + i].
    A ph[U][TP];
    int64_t off[U];
    int64_t lo = 0, hi = outN / U;  // whole groups of U outputs
    for (int r = 0; r < U; r++) {
        const int64_t k0 = pos_mod(p0 - r, U);
        off[r] = (r + k0 - p0) / U;
        for (int i = 0; i < TP; i++) ph[r][i] = t[k0 + U * i];
        lo = std::max(lo, -off[r]);
        hi = std::min(hi, n - TP + 1 - off[r]);
    }
    lo = std::min(lo, outN / U);
    hi = std::max(hi, lo);
    fir_row_general(in, n, t, FW, U, 1, p0, out, 0, U * lo);
    for (int64_t m = lo; m < hi; m++) {
        for (int r = 0; r < U; r++) {
            const A* __restrict src = in + (m + off[r]);
            A s = out[U * m + r];
            for (int i = 0; i < TP; i++) s += ph[r][i] * src[i];
            out[U * m + r] = s;
        }
    }
    fir_row_general(in, n, t, FW, U, 1, p0, out, U * hi, outN);
}

template <class A>
void fir_row(const A* in, int64_t n, const A* t, int taps, int u, int d, int64_t p0, A* out, int64_t outN) {
    if (taps == 4) {
        if (u == 1 && d == 1) return fir_row_down_fixed<1, 4>(in, n, t, p0, out, outN);
        if (u == 1 && d == 2) return fir_row_down_fixed<2, 4>(in, n, t, p0, out, outN);
        if (u == 2 && d == 1) return fir_row_up_fixed<2, 4>(in, n, t, p0, out, outN);
    }
    if (u == 1 && d == 1) return fir_row_down<1>(in, n, t, taps, p0, out, outN);
    if (u == 1 && d == 2) return fir_row_down<2>(in, n, t, taps, p0, out, outN);
    if (u == 2 && d == 1) return fir_row_up<2>(in, n, t, taps, 2, p0, out, outN);
    if (d == 1) return fir_row_up<0>(in, n, t, taps, u, p0, out, outN);
    fir_row_general(in, n, t, taps, u, d, p0, out, 0, outN);
}

// A square 2-D filter that is exactly g g^T for a 1-D g (StyleGAN2 stores its [1, 3, 3, 1] filter
// as the 4x4 outer product): returns true and g. The separable path then does 2n multiply-adds per
// output instead of n^2; as every product g_i g_j equals the 2-D tap exactly, only the order of the
// additions changes.
template <class A>
bool symmetric_rank1(const A* f, int n, std::vector<A>& g) {
    int c = 0;
    for (int i = 1; i < n; i++)
        if (f[i * n + i] > f[c * n + c]) c = i;
    const A d = f[c * n + c];
    if (!(d > A(0))) return false;
    const A s = std::sqrt(d);
    g.resize(n);
    for (int i = 0; i < n; i++) g[i] = f[i * n + c] / s;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (g[i] * g[j] != f[i * n + j]) return false;
    return true;
}

}  // namespace

template <class T>
void upfirdn2d_cpu(const upfirdn2d_kernel_params& p) {
    using A = typename Acc<T>::type;
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const A* f = static_cast<const A*>(p.f);
    std::vector<A> g;
    const bool separable = p.separable || (p.filterW == p.filterH && symmetric_rank1(f, p.filterW, g));
    if (!p.separable && separable) f = g.data();
    const int fw = p.filterW, fh = p.filterH;

    // Correlation taps (flipped unless p.flip), with the gain folded into the horizontal ones.
    const A gain = load<A>(p.gain);
    std::vector<A> fx, fy, f2;
    if (separable) {
        fx.resize(fw);
        fy.resize(fh);
        for (int k = 0; k < fw; k++) fx[k] = (p.flip ? f[k] : f[fw - 1 - k]) * gain;
        for (int k = 0; k < fh; k++) fy[k] = p.flip ? f[k] : f[fh - 1 - k];
    } else {
        f2.resize(static_cast<size_t>(fw) * fh);
        for (int ky = 0; ky < fh; ky++)
            for (int kx = 0; kx < fw; kx++)
                f2[ky * fw + kx] = (p.flip ? f[ky * fw + kx] : f[(fh - 1 - ky) * fw + (fw - 1 - kx)]) * gain;
    }

    const int64_t inH = p.inH, inW = p.inW, outH = p.outH, outW = p.outW;
    const int64_t rows = p.major * outH;
    const bool parallel = rows > 1 && rows * outW * std::max(1, fw * fh / (p.upx * p.upy)) > 16384;

#pragma omp parallel if (parallel)
    {
        std::vector<A> acc(outW), tmp(inW), conv(std::is_same<T, A>::value ? 0 : inW);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t plane = r / outH, oy = r % outH;
            const T* xp = x + plane * inH * inW;
            std::fill(acc.begin(), acc.end(), A(0));
            if (separable) std::fill(tmp.begin(), tmp.end(), A(0));
            const int64_t j0 = oy * p.downy - p.pady0;  // zero-inserted row index of tap ky = 0
            for (int64_t ky = first_tap(j0, p.upy); ky < fh; ky += p.upy) {
                const int64_t iy = (j0 + ky) / p.upy;
                if (iy >= inH) break;
                const A* row = row_as<T, A>(xp + iy * inW, inW, conv.data());
                if (separable) {
                    const A w = fy[ky];
                    A* __restrict dst = tmp.data();
                    for (int64_t i = 0; i < inW; i++) dst[i] += w * row[i];
                } else {
                    fir_row<A>(row, inW, f2.data() + ky * fw, fw, p.upx, p.downx, p.padx0, acc.data(), outW);
                }
            }
            if (separable) fir_row<A>(tmp.data(), inW, fx.data(), fw, p.upx, p.downx, p.padx0, acc.data(), outW);
            store_row(acc.data(), y + r * outW, outW);
        }
    }
}

#define RLSE_INSTANTIATE(T) \
    template void upfirdn2d_cpu<T>(const upfirdn2d_kernel_params&);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE

}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
