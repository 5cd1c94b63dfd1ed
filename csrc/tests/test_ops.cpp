// C++ test of the CPU kernels against naive loops (run by ctest; see CMakeLists.txt).
#include <c10/util/Half.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "adain.h"
#include "bias_act.h"
#include "downsample_loss.h"
#include "upfirdn2d.h"

static int failures = 0;

static void expect_close(double got, double want, double tol, const char* what, int idx) {
    if (!(std::fabs(got - want) <= tol * (1.0 + std::fabs(want)))) {
        if (failures < 20) std::printf("FAIL %s [%d]: got %.9g, want %.9g\n", what, idx, got, want);
        failures++;
    }
}

static std::vector<float> randn(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist;
    std::vector<float> v(n);
    for (auto& e : v) e = dist(gen);
    return v;
}

// upfirdn2d straight from its definition (csrc/common/upfirdn2d.h), in double.
static std::vector<double> upfirdn2d_naive(const std::vector<float>& x, const std::vector<float>& f,
                                           const upfirdn2d_kernel_params& p) {
    std::vector<double> y(p.major * p.outH * p.outW, 0.0);
    auto tap = [&](int ky, int kx) -> double {  // correlation taps
        const int fy = p.flip ? ky : p.filterH - 1 - ky, fx = p.flip ? kx : p.filterW - 1 - kx;
        return p.separable ? double(f[fy]) * f[fx] : double(f[fy * p.filterW + fx]);
    };
    for (int64_t m = 0; m < p.major; m++)
        for (int oy = 0; oy < p.outH; oy++)
            for (int ox = 0; ox < p.outW; ox++) {
                double s = 0;
                for (int ky = 0; ky < p.filterH; ky++)
                    for (int kx = 0; kx < p.filterW; kx++) {
                        const int uy = oy * p.downy + ky - p.pady0, ux = ox * p.downx + kx - p.padx0;
                        if (uy < 0 || ux < 0 || uy % p.upy || ux % p.upx) continue;
                        const int iy = uy / p.upy, ix = ux / p.upx;
                        if (iy >= p.inH || ix >= p.inW) continue;
                        s += tap(ky, kx) * x[(m * p.inH + iy) * p.inW + ix];
                    }
                y[(m * p.outH + oy) * p.outW + ox] = s * p.gain;
            }
    return y;
}

static void test_upfirdn2d() {
    struct Case { int up[2], down[2], pad[4], flip, separable, fh, fw; double gain; };
    const Case cases[] = {
        {{2, 2}, {1, 1}, {2, 1, 2, 1}, 0, 0, 4, 4, 4.0},     // StyleGAN2 upsample2d
        {{1, 1}, {2, 2}, {1, 1, 1, 1}, 0, 0, 4, 4, 1.0},     // downsample2d
        {{2, 2}, {1, 1}, {2, 1, 2, 1}, 0, 1, 4, 4, 4.0},     // separable
        {{1, 1}, {1, 1}, {2, 1, 1, 2}, 1, 0, 4, 4, 1.0},     // pure FIR, flipped
        {{3, 3}, {2, 2}, {-1, 2, 3, -2}, 0, 0, 3, 5, 1.5},   // general, negative padding
        {{2, 1}, {1, 3}, {0, 3, -1, 4}, 1, 1, 5, 5, 0.5},    // anisotropic
    };
    const int major = 3, inH = 7, inW = 13;
    auto x = randn(major * inH * inW, 1);
    int ci = 0;
    for (const Case& c : cases) {
        upfirdn2d_kernel_params p{};
        p.upx = c.up[0]; p.upy = c.up[1]; p.downx = c.down[0]; p.downy = c.down[1];
        p.padx0 = c.pad[0]; p.padx1 = c.pad[1]; p.pady0 = c.pad[2]; p.pady1 = c.pad[3];
        p.flip = c.flip; p.separable = c.separable; p.gain = c.gain;
        p.major = major; p.inH = inH; p.inW = inW; p.filterH = c.fh; p.filterW = c.fw;
        p.outH = (inH * p.upy + p.pady0 + p.pady1 - c.fh) / p.downy + 1;
        p.outW = (inW * p.upx + p.padx0 + p.padx1 - c.fw) / p.downx + 1;
        auto f = randn(c.separable ? c.fw : c.fh * c.fw, 100 + ci);
        std::vector<float> y(major * p.outH * p.outW);
        p.x = x.data(); p.f = f.data(); p.y = y.data();
        upfirdn2d_cpu<float>(p);
        auto want = upfirdn2d_naive(x, f, p);
        for (size_t i = 0; i < y.size(); i++) expect_close(y[i], want[i], 1e-5, "upfirdn2d float", ci * 10000 + int(i));

        std::vector<c10::Half> xh(x.size()), yh(y.size());  // half storage, float math
        for (size_t i = 0; i < x.size(); i++) xh[i] = c10::Half(x[i]);
        std::vector<float> xr(xh.begin(), xh.end());
        auto want_h = upfirdn2d_naive(xr, f, p);
        p.x = xh.data(); p.y = yh.data();
        upfirdn2d_cpu<c10::Half>(p);
        for (size_t i = 0; i < yh.size(); i++) expect_close(float(yh[i]), want_h[i], 2e-3, "upfirdn2d half", ci * 10000 + int(i));
        ci++;
    }
}

static void test_bias_act() {
    // x (2, 3, 2) with bias along dim 1: lrelu, gain 2, clamp 1.5.
    const std::vector<float> x = {-1.0f, 0.25f, 2.0f, -0.5f, 0.0f, 3.0f, 0.5f, -2.0f, -0.2f, 0.7f, 1.0f, -3.0f};
    const std::vector<float> b = {0.1f, -0.5f, 0.2f};
    const double alpha = 0.2, gain = 2.0, clamp = 1.5;
    std::vector<float> y(x.size()), dx(x.size()), dy(x.size(), 1.0f);
    bias_act_kernel_params p{};
    p.x = x.data(); p.b = b.data(); p.y = y.data();
    p.act = kBiasActLrelu; p.alpha = alpha; p.gain = gain; p.clamp = clamp;
    p.sizeX = int64_t(x.size()); p.sizeB = 3; p.stepB = 2;
    bias_act_cpu<float>(p);
    for (size_t i = 0; i < x.size(); i++) {
        const double v = double(x[i]) + b[(i / 2) % 3];
        const double a = (v > 0 ? v : v * alpha) * gain;
        const double want = std::fmin(std::fmax(a, -clamp), clamp);
        expect_close(y[i], want, 1e-6, "bias_act forward", int(i));
    }
    p.x = dy.data(); p.xref = x.data(); p.y = dx.data(); p.grad = 1;  // gradient from xref
    bias_act_cpu<float>(p);
    for (size_t i = 0; i < x.size(); i++) {
        const double v = double(x[i]) + b[(i / 2) % 3];
        const double a = (v > 0 ? v : v * alpha) * gain;
        const double want = std::fabs(a) <= clamp ? (v > 0 ? 1.0 : alpha) * gain : 0.0;
        expect_close(dx[i], want, 1e-6, "bias_act gradient", int(i));
    }
}

// PULSE's bicubic taps (rlse_fast/downsample.py).
static std::vector<float> bicubic_taps(int s) {
    auto keys = [](double t) {
        const double a = -0.5;
        t = std::fabs(t);
        if (t <= 1) return (a + 2) * t * t * t - (a + 3) * t * t + 1;
        if (t < 2) return a * t * t * t - 5 * a * t * t + 8 * a * t - 4 * a;
        return 0.0;
    };
    std::vector<double> k(4 * s);
    double total = 0;
    for (int i = 0; i < 4 * s; i++) total += k[i] = keys((i - 2 * s + 0.5) / s);
    std::vector<float> out(4 * s);
    for (int i = 0; i < 4 * s; i++) out[i] = float(k[i] / total);
    return out;
}

// Downscale one plane naively: explicit reflect padding, then the strided separable FIR.
static std::vector<double> downscale_naive(const float* y, int H, int W, const std::vector<float>& k, int s, int p0) {
    const int L = int(k.size()), h = H / s, w = W / s;
    auto refl = [](int q, int n) { return q < 0 ? -q : (q >= n ? 2 * (n - 1) - q : q); };
    std::vector<double> out(h * w, 0.0);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double acc = 0;
            for (int t = 0; t < L; t++)
                for (int u = 0; u < L; u++)
                    acc += double(k[t]) * k[u] * y[refl(i * s + t - p0, H) * W + refl(j * s + u - p0, W)];
            out[i * w + j] = acc;
        }
    return out;
}

static void test_downsample_loss() {
    for (int s : {2, 4}) {
        const int B = 2, C = 3, H = 12 * s, W = 10 * s, h = H / s, w = W / s;
        const int p0 = (3 * s) / 2;
        auto k = bicubic_taps(s);
        auto y = randn(size_t(B) * C * H * W, 7);
        auto x = randn(size_t(B) * C * h * w, 8);
        std::vector<float> loss(B), diff(x.size()), gloss = {0.7f, -1.3f}, dy(y.size());
        downsample_loss_kernel_params p{};
        p.y = y.data(); p.x = x.data(); p.taps = k.data(); p.loss = loss.data(); p.diff = diff.data();
        p.batch = B; p.channels = C; p.H = H; p.W = W; p.h = h; p.w = w;
        p.factor = s; p.ntaps = int(k.size()); p.pad0 = p0;
        downsample_loss_cpu<float>(p);
        std::vector<double> want(B, 0.0);
        for (int pl = 0; pl < B * C; pl++) {
            auto d = downscale_naive(y.data() + size_t(pl) * H * W, H, W, k, s, p0);
            for (int i = 0; i < h * w; i++) {
                const double e = d[i] - x[size_t(pl) * h * w + i];
                want[pl / C] += e * e;
                expect_close(diff[size_t(pl) * h * w + i], e, 1e-5, "downsample_loss diff", i);
            }
        }
        for (int b = 0; b < B; b++) expect_close(loss[b], want[b], 1e-5, "downsample_loss", b);

        // Backward by the adjoint identity <dy, v> = <2 * gloss * diff, D(v)> for a random v.
        p.gloss = gloss.data(); p.dy = dy.data();
        downsample_loss_backward_cpu<float>(p);
        auto v = randn(y.size(), 9);
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < y.size(); i++) lhs += double(dy[i]) * v[i];
        for (int pl = 0; pl < B * C; pl++) {
            auto dv = downscale_naive(v.data() + size_t(pl) * H * W, H, W, k, s, p0);
            for (int i = 0; i < h * w; i++) rhs += 2.0 * gloss[pl / C] * diff[size_t(pl) * h * w + i] * dv[i];
        }
        expect_close(lhs, rhs, 1e-4, "downsample_loss backward (adjoint)", s);
    }
}

// The v1 epilogue against its definition (csrc/common/adain.h) in double: forward, and the backward
// against central differences of L = sum(g * y) with respect to x and the bias.
static void test_adain() {
    const int B = 2, C = 3, N = 37;  // 37: the 8-lane sums' tail
    const double eps = 1e-8, alpha = 0.2;
    auto x = randn(B * C * N, 7), noise = randn(N, 8), g = randn(B * C * N, 9), par = randn(4 * B * C, 10);
    std::vector<float> strength(par.begin(), par.begin() + B * C), bias(par.begin() + B * C, par.begin() + 2 * B * C);
    std::vector<float> scale(par.begin() + 2 * B * C, par.begin() + 3 * B * C), shift(par.begin() + 3 * B * C, par.end());
    auto forward = [&](const std::vector<float>& xs, const std::vector<float>& bs, std::vector<double>& y) {
        y.assign(B * C * N, 0.0);
        for (int r = 0; r < B * C; r++) {
            std::vector<double> v(N);
            double mean = 0, var = 0;
            for (int i = 0; i < N; i++) {
                const double u = xs[r * N + i] + double(noise[i]) * strength[r] + bs[r];
                v[i] = u > 0 ? u : u * alpha;
                mean += v[i] / N;
            }
            for (int i = 0; i < N; i++) var += (v[i] - mean) * (v[i] - mean) / N;
            for (int i = 0; i < N; i++) y[r * N + i] = scale[r] * (v[i] - mean) / std::sqrt(var + eps) + shift[r];
        }
    };
    adain_kernel_params p{};
    p.x = x.data(); p.noise = noise.data(); p.strength = strength.data(); p.bias = bias.data();
    p.scale = scale.data(); p.shift = shift.data(); p.planes = B * C; p.channels = C; p.n = N;
    p.noise_bstride = 0; p.eps = eps; p.alpha = alpha;
    std::vector<float> y(B * C * N), stats(2 * B * C), du(B * C * N), sums(4 * B * C);
    p.y = y.data(); p.stats = stats.data();
    adain_cpu<float>(p);
    std::vector<double> want;
    forward(x, bias, want);
    for (int i = 0; i < B * C * N; i++) expect_close(y[i], want[i], 1e-4, "adain forward", i);
    p.g = g.data(); p.y = du.data(); p.sums = sums.data();
    adain_backward_cpu<float>(p);
    auto loss = [&](const std::vector<float>& xs, const std::vector<float>& bs) {
        std::vector<double> yy;
        forward(xs, bs, yy);
        double s = 0;
        for (int i = 0; i < B * C * N; i++) s += g[i] * yy[i];
        return s;
    };
    const float h = 1e-2f;
    for (int i = 0; i < B * C * N; i += 5) {  // dL/dx = du (du is also dL/du: u = x + ...)
        const int r = i / N;
        if (std::fabs(x[i] + double(noise[i % N]) * strength[r] + bias[r]) < 2 * h) continue;  // the lrelu kink
        auto xp = x, xm = x;
        xp[i] += h; xm[i] -= h;
        expect_close(du[i], (loss(xp, bias) - loss(xm, bias)) / (2 * h), 2e-2, "adain dx", i);
    }
    for (int r = 0; r < B * C; r++) {  // dbias = sum du
        auto bp = bias, bm = bias;
        bp[r] += h; bm[r] -= h;
        expect_close(sums[2 * B * C + r], (loss(x, bp) - loss(x, bm)) / (2 * h), 2e-2, "adain dbias", r);
    }
}

int main() {
    test_upfirdn2d();
    test_bias_act();
    test_downsample_loss();
    test_adain();
    if (failures) {
        std::printf("%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("all checks passed\n");
    return 0;
}
