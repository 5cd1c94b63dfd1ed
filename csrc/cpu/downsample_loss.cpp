// CPU kernels of downsample_loss. Forward: per low-res row, a vertical pass over the full width into
// a thread-local row (reflect-padded in place), then the horizontal taps, the difference with x and
// its square, summed per row and then per sample; the downscaled image is never stored (only the
// low-res difference, for backward). Backward: the transposed horizontal pass per low-res row into
// a buffer (h rows of width W per plane), then per high-res row the transposed vertical pass.
// Math in float (double for double); the row sums are added up in double.
#include "downsample_loss.h"

#include "cpu_isa.h"
#include "kernel_math.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

RLSE_ISA_BEGIN
namespace rlse {
namespace RLSE_ISA {
namespace {

// PyTorch's 'reflect' index for a single reflection (|overshoot| < n).
inline int64_t reflect(int64_t q, int64_t n) { return q < 0 ? -q : (q >= n ? 2 * (n - 1) - q : q); }

}  // namespace

template <class T>
void downsample_loss_cpu(const downsample_loss_kernel_params& p) {
    using A = typename Acc<T>::type;
    const T* y = static_cast<const T*>(p.y);
    const A* x = static_cast<const A*>(p.x);
    const A* taps = static_cast<const A*>(p.taps);
    A* diff = static_cast<A*>(p.diff);
    const int64_t H = p.H, W = p.W, h = p.h, w = p.w, s = p.factor, L = p.ntaps, p0 = p.pad0;
    const int64_t p1 = L - s - p0;
    const int64_t rows = int64_t(p.batch) * p.channels * h;
    std::vector<double> rowsum(rows);

#pragma omp parallel if (rows > 1 && rows * W * L > 32768)
    {
        std::vector<A> vp(W + p0 + p1), conv(std::is_same<T, A>::value ? 0 : 4 * W);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t plane = r / h, i = r % h;
            const T* yp = y + plane * H * W;
            A* __restrict v = vp.data() + p0;
            std::fill(v, v + W, A(0));
            // Vertical taps, four rows at a time (a quarter of the loads and stores of v).
            auto row_at = [&](int64_t t, int slot) {
                return row_as<T, A>(yp + reflect(i * s + t - p0, H) * W, W, conv.data() + slot * W);
            };
            int64_t t = 0;
            for (; t + 4 <= L; t += 4) {
                const A* __restrict r0 = row_at(t, 0);
                const A* __restrict r1 = row_at(t + 1, 1);
                const A* __restrict r2 = row_at(t + 2, 2);
                const A* __restrict r3 = row_at(t + 3, 3);
                const A c0 = taps[t], c1 = taps[t + 1], c2 = taps[t + 2], c3 = taps[t + 3];
                for (int64_t k = 0; k < W; k++) v[k] += (c0 * r0[k] + c1 * r1[k]) + (c2 * r2[k] + c3 * r3[k]);
            }
            for (; t < L; t++) {
                const A* __restrict row = row_at(t, 0);
                const A c = taps[t];
                for (int64_t k = 0; k < W; k++) v[k] += c * row[k];
            }
            for (int64_t m = 0; m < p0; m++) vp[m] = v[p0 - m];         // reflect-pad the row
            for (int64_t m = 0; m < p1; m++) v[W + m] = v[W - 2 - m];
            const A* xr = x + r * w;
            A* dr = diff ? diff + r * w : nullptr;
            A sse = 0;
            for (int64_t j = 0; j < w; j++) {  // horizontal taps, difference, square
                const A d = dot8<A>(taps, vp.data() + j * s, L) - xr[j];
                if (dr) dr[j] = d;
                sse += d * d;
            }
            rowsum[r] = sse;
        }
    }
    A* loss = static_cast<A*>(p.loss);
    const int64_t per_sample = int64_t(p.channels) * h;
    for (int b = 0; b < p.batch; b++) {
        double total = 0;
        for (int64_t k = 0; k < per_sample; k++) total += rowsum[b * per_sample + k];
        loss[b] = load<A>(total);
    }
}

template <class T>
void downsample_loss_backward_cpu(const downsample_loss_kernel_params& p) {
    using A = typename Acc<T>::type;
    const A* diff = static_cast<const A*>(p.diff);
    const A* gloss = static_cast<const A*>(p.gloss);
    const A* taps = static_cast<const A*>(p.taps);
    T* dy = static_cast<T*>(p.dy);
    const int64_t H = p.H, W = p.W, h = p.h, w = p.w, s = p.factor, L = p.ntaps, p0 = p.pad0;
    const int64_t p1 = L - s - p0;
    const int64_t planes = int64_t(p.batch) * p.channels;
    const int64_t rows_lo = planes * h, rows_hi = planes * H;
    std::vector<A> gv(rows_lo * W);  // horizontal pass transposed: h rows of width W per plane
    const bool parallel = rows_hi > 1 && rows_hi * W * 4 > 32768;

#pragma omp parallel if (parallel)
    {
        std::vector<A> gp(W + p0 + p1), acc(W);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows_lo; r++) {
            const A scale = A(2) * gloss[r / (int64_t(p.channels) * h)];
            std::fill(gp.begin(), gp.end(), A(0));
            const A* dr = diff + r * w;
            for (int64_t j = 0; j < w; j++) {
                const A g = scale * dr[j];
                A* __restrict dst = gp.data() + j * s;
                for (int64_t t = 0; t < L; t++) dst[t] += taps[t] * g;
            }
            A* __restrict out = gv.data() + r * W;
            for (int64_t k = 0; k < W; k++) out[k] = gp[p0 + k];
            for (int64_t m = 0; m < p0; m++) out[p0 - m] += gp[m];  // fold the reflect padding back
            for (int64_t m = 0; m < p1; m++) out[W - 2 - m] += gp[p0 + W + m];
        }

#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows_hi; r++) {
            const int64_t plane = r / H, q = r % H;
            std::fill(acc.begin(), acc.end(), A(0));
            // Padded row positions m that reflect onto row q, then the low-res rows i whose taps
            // t = m - i*s reach them.
            int64_t ms[3];
            int nm = 0;
            ms[nm++] = q + p0;
            if (q >= 1 && q <= p0) ms[nm++] = p0 - q;
            if (q <= H - 2 && q >= H - 1 - p1) ms[nm++] = p0 + 2 * (H - 1) - q;
            for (int a = 0; a < nm; a++) {
                const int64_t m = ms[a];
                const int64_t i0 = std::max<int64_t>(0, (m - L + s) / s);  // ceil((m - L + 1) / s), m - L + 1 > -s
                const int64_t i1 = std::min<int64_t>(h - 1, m / s);
                for (int64_t i = i0; i <= i1; i++) {
                    const int64_t t = m - i * s;
                    if (t < 0 || t >= L) continue;
                    const A c = taps[t];
                    const A* __restrict src = gv.data() + (plane * h + i) * W;
                    A* __restrict dst = acc.data();
                    for (int64_t k = 0; k < W; k++) dst[k] += c * src[k];
                }
            }
            store_row(acc.data(), dy + r * W, W);
        }
    }
}

#define RLSE_INSTANTIATE(T) \
    template void downsample_loss_cpu<T>(const downsample_loss_kernel_params&); \
    template void downsample_loss_backward_cpu<T>(const downsample_loss_kernel_params&);
RLSE_FOR_EACH_KERNEL_DTYPE(RLSE_INSTANTIATE)
#undef RLSE_INSTANTIATE

}  // namespace RLSE_ISA
}  // namespace rlse
RLSE_ISA_END
