"""The fast engine (rlse_fast/engine/fast.py) against the eager one (engine.eager.super_resolve), and the FLOP model.

On the CPU the fast path (fp32, no graphs) runs the very iteration that CUDA captures; with the
reference ops everywhere it must reproduce the eager engine bit for bit (asserted with a tight
tolerance, so a harmless reordering in a future torch does not break it). CUDA tests (graphs, bf16)
skip without a GPU; benchmarks/gpu_check.sh runs them on one.
"""
import contextlib
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gan_files import tiny_gan
from rlse_fast import flops, gaussian_fit
from rlse_fast.config import RLSEConfig
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.fast import FastLoop, ops_impl, schedule_table, super_resolve_fast
from rlse_fast.engine.select import run
from rlse_fast.models.stylegan2 import DiscriminatorConfig, GeneratorConfig
from rlse_fast.ops import dispatch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    G, D = tiny_gan(seed=5)
    fit = gaussian_fit.compute(G, 8192)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        hr = (G(torch.randn(3, G.z_dim, generator=gen), noise_mode="const").clamp(-1, 1) + 1) / 2
    return G, D, fit, bicubic_downsample_ref(hr, 4)


def eager_ref(G, D, lr, cfg, fit, seeds, on_step=None):
    """The eager engine with the reference ops everywhere (the networks' layers too)."""
    with ops_impl("ref"):
        return super_resolve(G, D, lr, cfg, fit, seeds=seeds, impl="ref", on_step=on_step)


def assert_same_result(a, b, atol=1e-6):
    torch.testing.assert_close(b.images, a.images, rtol=0, atol=atol)
    torch.testing.assert_close(b.lr_images, a.lr_images, rtol=0, atol=atol)
    torch.testing.assert_close(b.best_loss, a.best_loss, rtol=1e-6, atol=atol)
    assert b.best_step == a.best_step
    assert len(b.history) == len(a.history)
    for ha, hb in zip(a.history, b.history):
        assert hb["step"] == ha["step"] and hb["lr"] == ha["lr"]
        for k in ("total", "pixel", "semantic", "geocross"):
            assert hb[k] == pytest.approx(ha[k], rel=1e-5, abs=1e-6), (ha["step"], k)


def assert_same_trajectory(a, b, mean_atol=2e-3, step_rtol=5e-3):
    """Two runs of the same faces and seeds whose kernels round differently (CUDA: other kernels,
    cuDNN's algorithms, atomics). Step 0 is a forward pass from the same state and must agree to
    rounding. Later steps cannot agree elementwise: Adam's first step moves every latent element by
    exactly +-lr (0.4), the sign of its gradient, so a gradient at rounding level flips an element.
    Measured on the CPU with 1-ulp noise on every convolution (forward and backward), 4 to 10 steps:
    at most 8e-4 mean image difference and 1.7e-3 relative loss at any step; a stale Adam step
    count, no fine-tuning step or a 10% learning-rate error give at least 5.7e-3 and 1.1e-2."""
    for k in ("total", "pixel", "semantic", "geocross"):
        assert b.history[0][k] == pytest.approx(a.history[0][k], rel=1e-4, abs=1e-6), k
    assert len(b.history) == len(a.history)
    for ha, hb in zip(a.history, b.history):
        assert hb["lr"] == ha["lr"]
        assert hb["total"] == pytest.approx(ha["total"], rel=step_rtol), ha["step"]
    diff = (b.images - a.images).abs()
    assert diff.mean().item() <= mean_atol, (diff.mean().item(), diff.max().item())
    torch.testing.assert_close(b.best_loss, a.best_loss, rtol=step_rtol, atol=0)


def test_trajectory_check_tells_rounding_from_a_wrong_step(setup):
    """assert_same_trajectory (the CUDA comparisons) on the CPU: passes for the same run with the
    convolutions' results perturbed at rounding level, fails for a 10% learning-rate error."""
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=6)
    a = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], impl="ref", precision="fp32")
    conv2d = torch.nn.functional.conv2d
    gen = torch.Generator().manual_seed(0)

    class Ulp(torch.autograd.Function):  # +-1 ulp of float32 on a tensor and on its gradient
        @staticmethod
        def forward(ctx, t):
            return t * (1 + (torch.rand(t.shape, generator=gen) * 2 - 1) * 2.0 ** -23)

        @staticmethod
        def backward(ctx, g):
            return g * (1 + (torch.rand(g.shape, generator=gen) * 2 - 1) * 2.0 ** -23)

    try:
        torch.nn.functional.conv2d = lambda *args, **kw: Ulp.apply(conv2d(*args, **kw))
        b = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], impl="ref", precision="fp32")
    finally:
        torch.nn.functional.conv2d = conv2d
    assert not torch.equal(a.images, b.images)  # the noise reached the result
    assert_same_trajectory(a, b)
    group = FastLoop._adam_group
    try:
        FastLoop._adam_group = lambda self, indices, grads, rate: group(self, indices, grads, rate * 0.9)
        c = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], impl="ref", precision="fp32")
    finally:
        FastLoop._adam_group = group
    with pytest.raises(AssertionError):
        assert_same_trajectory(a, c)


@pytest.mark.parametrize("mode", ["rlse", "pulse"])
def test_fast_fp32_equals_eager(setup, mode):
    G, D, fit, lr = setup
    cfg = RLSEConfig.from_mode(mode, steps=8)
    a = eager_ref(G, D, lr, cfg, fit, [1, 2, 3])
    b = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], impl="ref", precision="fp32", graphs=False)
    assert_same_result(a, b)
    assert torch.equal(b.images, a.images)  # bit for bit: the same ops and the same fused Adam kernel
    # The first iterate is bookkept before its update: best_loss can only be <= step 0's loss.
    assert all(bl <= t0 for bl, t0 in zip(b.best_loss.tolist(), b.history[0]["total"]))


def test_fast_variants_of_the_loss(setup):
    """PULSE's clamped MSE, the 'sum' reduction of L_s, and no fine-tuning, through both engines."""
    G, D, fit, lr = setup
    cfg = RLSEConfig.from_mode("rlse", finetune=False, pixel_loss="mse", semantic_reduction="sum", steps=5,
                               lr_schedule="linear1cycle", trainable_noise=2)
    assert_same_result(eager_ref(G, D, lr[:2], cfg, fit, [4, 5]),
                       super_resolve_fast(G, D, lr[:2], cfg, fit, seeds=[4, 5], impl="ref", precision="fp32"))


def test_batch_equals_faces_one_at_a_time(setup):
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=4)
    batch = super_resolve_fast(G, D, lr, cfg, fit, seeds=[7, 8, 9], impl="ref", precision="fp32")
    for i, seed in enumerate([7, 8, 9]):
        one = super_resolve_fast(G, D, lr[i:i + 1], cfg, fit, seeds=[seed], impl="ref", precision="fp32")
        torch.testing.assert_close(one.images[0], batch.images[i], rtol=1e-4, atol=1e-4)
        assert one.best_step[0] == batch.best_step[i]
        assert one.history[-1]["total"][0] == pytest.approx(batch.history[-1]["total"][i], rel=1e-4)


def test_on_step_sees_the_evaluated_images(setup):
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=3)
    seen = {"eager": [], "fast": []}

    def grab(name):
        return lambda step, img, losses: seen[name].append((step, img.clone(), losses))

    eager_ref(G, D, lr[:1], cfg, fit, [3], on_step=grab("eager"))
    super_resolve_fast(G, D, lr[:1], cfg, fit, seeds=3, impl="ref", precision="fp32", on_step=grab("fast"))
    for (sa, ia, la), (sb, ib, lb) in zip(seen["eager"], seen["fast"]):
        assert sa == sb and la["lr"] == lb["lr"]
        torch.testing.assert_close(ib, ia, rtol=0, atol=1e-6)
        assert lb["total"] == pytest.approx(la["total"], rel=1e-5)


def test_run_picks_the_engine(setup):
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=2)
    with ops_impl("ref"):
        a = run(G, D, lr[:1], cfg, fit, seeds=1, impl="ref")
    b = run(G, D, lr[:1], cfg, fit, seeds=1, impl="ref", fast=True, precision="fp32")
    assert_same_result(a, b)
    with pytest.raises(ValueError, match="fast engine"):
        run(G, D, lr[:1], cfg, fit, precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        run(G, D, lr[:1], cfg, fit, fast=True, precision="fp16")


def test_ops_impl_scope_restores_dispatch():
    x = torch.zeros(1)
    outside = dispatch.pick("bias_act", "auto", x)
    with ops_impl("ref"):
        assert dispatch.pick("bias_act", "auto", x) is None
        with ops_impl("auto"):
            assert dispatch.pick("bias_act", "auto", x) is None  # 'auto' inside keeps the outer choice
    assert dispatch.pick("bias_act", "auto", x) is outside
    with pytest.raises(ValueError):
        with ops_impl("nope"):
            pass


def test_schedule_table_matches_lambda_lr():
    cfg = RLSEConfig(steps=10)
    lrs, table = schedule_table(cfg)
    x = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    from rlse_fast.engine.schedule import SCHEDULES

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: SCHEDULES[cfg.lr_schedule](s, cfg.steps))
    for t in range(cfg.steps):
        assert lrs[t] == opt.param_groups[0]["lr"]
        assert table[t, 0].item() == lrs[t] and table[t, 1].item() == cfg.finetune_lr
        opt.step()
        sched.step()


def test_bf16_autocast_on_cpu(setup):
    """bf16 autocast runs on the CPU; its losses stay within a loose budget of fp32's."""
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=3)
    ref = super_resolve_fast(G, D, lr[:2], cfg, fit, seeds=[1, 2], impl="ref", precision="fp32")
    try:
        low = super_resolve_fast(G, D, lr[:2], cfg, fit, seeds=[1, 2], impl="ref", precision="bf16")
    except RuntimeError as exc:  # an op without a CPU bf16 kernel in this torch build
        pytest.skip(f"CPU bf16 autocast unsupported here: {str(exc).splitlines()[0]}")
    # Step 0 starts from the same state: only the forward's rounding differs (bf16 has 8 bits).
    for k in ("total", "pixel", "semantic"):
        a, b = torch.tensor(ref.history[0][k]), torch.tensor(low.history[0][k])
        assert torch.all((a - b).abs() <= 0.03 * a.abs() + 1e-3), (k, a, b)
    assert all(math.isfinite(v) for h in low.history for v in h["total"])
    assert low.images.dtype == torch.float32


def test_bad_arguments(setup):
    G, D, fit, lr = setup
    with pytest.raises(ValueError, match="precision"):
        FastLoop(G, D, lr, RLSEConfig(steps=1), fit, precision="fp16")
    with pytest.raises(ValueError, match="discriminator"):
        FastLoop(G, None, lr, RLSEConfig(steps=1), fit, precision="fp32")
    with pytest.raises(ValueError, match="seeds"):
        FastLoop(G, D, lr, RLSEConfig(steps=1), fit, seeds=[1], precision="fp32")
    loop = FastLoop(G, D, lr[:1], RLSEConfig(steps=1), fit, precision="fp32", impl="ref")
    loop.step()
    with pytest.raises(RuntimeError, match="done"):
        loop.step()


# ----------------------------------------------------------------------------- FLOPs


SMALL_G = GeneratorConfig(z_dim=32, w_dim=32, img_resolution=64, mapping_layers=2, channel_base=1024, channel_max=64)
SMALL_D = DiscriminatorConfig(img_resolution=64, channel_base=1024, channel_max=64)


@pytest.mark.parametrize("mode", ["rlse", "pulse"])
def test_flops_match_flop_counter(mode):
    """One iteration's count = FlopCounterMode over the eager engine (steps=2 minus steps=1, so the
    target features computed once are left out), at batch 1 (see rlse_fast.flops on batches)."""
    G, D = tiny_gan(0, SMALL_G, SMALL_D)
    fit = gaussian_fit.compute(G, 1000)
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def counted(steps):
        with ops_impl("ref"), FlopCounterMode(display=False) as counter:
            super_resolve(G, D, lr, RLSEConfig.from_mode(mode, steps=steps), fit, impl="ref")
        return counter.get_total_flops()

    measured = counted(2) - counted(1)
    model = flops.for_config(G, D, RLSEConfig.from_mode(mode), batch=1, factor=4)
    assert model.total == pytest.approx(measured, rel=0.05)
    assert (model.discriminator > 0) == (mode == "rlse")
    # Linear in the batch.
    assert flops.for_config(G, D, RLSEConfig.from_mode(mode), batch=3, factor=4).total == pytest.approx(3 * model.total)


def test_config_f_generator_is_about_045_tflop():
    f = flops.iteration_flops(flops.CONFIG_F, flops.CONFIG_F_D, batch=1, factor=16)
    assert 0.40e12 < f.generator < 0.50e12
    assert f.g_backward == pytest.approx(2 * f.g_forward, rel=0.02)
    assert 0.2e12 < f.discriminator < 0.4e12


# ----------------------------------------------------------------------------- CUDA


@pytest.fixture(scope="module")
def cuda_setup(setup):
    G, D, fit, lr = setup
    dev = torch.device("cuda")
    Gc, Dc = tiny_gan(seed=5)
    return Gc.to(dev), Dc.to(dev), {k: v.to(dev) for k, v in fit.items()}, lr.to(dev)


@cuda
@pytest.mark.parametrize("mode,packed_styles", [("rlse", False), ("pulse", False), ("rlse", True)])
def test_cuda_graph_replays_the_eager_iteration(cuda_setup, mode, packed_styles):
    G, D, fit, lr = cuda_setup
    cfg = RLSEConfig.from_mode(mode, steps=10)
    plain = FastLoop(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=False, packed_styles=packed_styles)
    for _ in range(cfg.steps):
        plain.step()
    plain = plain.result()
    loop = FastLoop(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=True, packed_styles=packed_styles)
    for _ in range(cfg.steps):
        loop.step()
    assert loop.capture.graph is not None, f"capture failed: {loop.capture.error}"
    graphed = loop.result()
    loop.close()
    assert_same_trajectory(plain, graphed)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_cudnn_benchmark_is_scoped_to_the_iterations(setup, cuda_setup_lazy, device):
    """Off by default. When asked, on CUDA the loop times cuDNN's algorithms inside its iterations
    only; the caller's setting is back after each step. On the CPU it is never touched."""
    G, D, fit, lr = setup if device == "cpu" else cuda_setup_lazy()
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        default = FastLoop(G, D, lr, RLSEConfig(steps=2), fit, seeds=[1, 2, 3], precision="fp32", graphs=False)
        assert default.options.cudnn_benchmark is False  # measured no faster on an H200, and slower to set up
        default.close()
        loop = FastLoop(G, D, lr, RLSEConfig(steps=2), fit, seeds=[1, 2, 3], precision="fp32", graphs=False,
                        cudnn_benchmark=True)
        assert loop.options.cudnn_benchmark == (device == "cuda")
        seen = []
        body = loop._iteration_body
        loop._iteration_body = lambda: (seen.append(torch.backends.cudnn.benchmark), body())[1]
        loop.step()
        assert seen == [device == "cuda"] and torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.fixture
def cuda_setup_lazy(request):
    return lambda: request.getfixturevalue("cuda_setup")


@cuda
def test_cuda_fast_matches_eager_engine(cuda_setup):
    G, D, fit, lr = cuda_setup
    cfg = RLSEConfig(steps=6)
    a = super_resolve(G, D, lr, cfg, fit, seeds=[1, 2, 3])
    b = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=True)
    assert_same_trajectory(a, b)


@cuda
def test_cuda_bf16_graphs_within_budget(cuda_setup):
    G, D, fit, lr = cuda_setup
    cfg = RLSEConfig(steps=8)
    ref = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=False)
    low = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="bf16", graphs=True)
    a, b = torch.tensor(ref.history[0]["total"]), torch.tensor(low.history[0]["total"])
    assert torch.all((a - b).abs() <= 0.03 * a.abs() + 1e-3)
    assert torch.isfinite(low.images).all() and low.best_loss.isfinite().all()
    # The optimisation still works: the last losses are well below the first.
    assert all(h < 0.9 * f for h, f in zip(low.best_loss.tolist(), low.history[0]["total"]))


@pytest.mark.parametrize("faces", [1, 3])
def test_channels_last_same_trajectory(setup, faces):
    """channels_last: D (a private copy) and G run in NHWC through the native ops (G one face at a
    time); the trajectory is the NCHW one to float rounding, and the caller's D keeps its layout."""
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=4)
    seeds = [1, 2, 3][:faces]
    a = super_resolve_fast(G, D, lr[:faces], cfg, fit, seeds=seeds, precision="fp32", impl="cpp")
    loop = FastLoop(G, D, lr[:faces], cfg, fit, seeds=seeds, precision="fp32", impl="cpp", channels_last=True)
    cl = torch.channels_last
    assert loop.D is not D and all(f.is_contiguous(memory_format=cl) and not f.is_contiguous()
                                   for f in loop.objective.target_feats if f.shape[-1] > 1)
    assert all(p.is_contiguous() for p in D.parameters())
    gen = torch.Generator().manual_seed(faces)
    ws = torch.randn(faces, G.synthesis.num_ws, G.cfg.w_dim, generator=gen)
    noise = [torch.randn(faces, 1, layer.resolution, layer.resolution, generator=gen)
             for layer in G.synthesis.noise_layers()]
    params = {k: p.detach() + 0.01 * torch.randn(faces, *p.shape, generator=gen)  # a different G per face
              for k, p in G.synthesis.named_parameters()}
    with torch.no_grad():
        img = G.synthesis(ws, noise=noise, params=params, channels_last=True)
        assert img.is_contiguous(memory_format=cl) and not img.is_contiguous()
        torch.testing.assert_close(img, G.synthesis(ws, noise=noise, params=params))
    for _ in range(cfg.steps):
        loop.step()
    b = loop.result()
    assert_same_trajectory(a, b)


@cuda
@pytest.mark.parametrize("faces", [1, 3])
def test_cuda_channels_last(cuda_setup, faces):
    G, D, fit, lr = cuda_setup
    cfg = RLSEConfig(steps=4)
    seeds = [1, 2, 3][:faces]
    a = super_resolve_fast(G, D, lr[:faces], cfg, fit, seeds=seeds, precision="fp32", graphs=False)
    b = super_resolve_fast(G, D, lr[:faces], cfg, fit, seeds=seeds, precision="fp32", graphs=True, channels_last=True)
    assert_same_trajectory(a, b)


class _FakeCapture:
    """torch.cuda.graph as torch 2.11 behaves when an op invalidates the capture: the body's error,
    then capture_end's own error from __exit__, with the capture stream left current."""

    def __init__(self, graph):
        self.graph = graph

    def __enter__(self):
        _FakeCuda.current = "capture-stream"
        _FakeCuda.generator.capturing = True  # capture_begin's prologue; only capture_end undoes it

    def __exit__(self, kind, exc, tb):
        if kind is not None:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")


class _FakeGenerator:
    """A CUDA generator's graph-safe state API: clone_state copies the seed, not the capture mode."""

    def __init__(self, seed=7, capturing=False):
        self.seed, self.capturing = seed, capturing

    def clone_state(self):
        return _FakeGenerator(self.seed)

    def graphsafe_set_state(self, other):
        self.seed, self.capturing = other.seed, other.capturing
        return self


class _FakeCuda:
    current = "caller-stream"
    replays = 0
    generator = _FakeGenerator()

    class CUDAGraph:
        def replay(self):
            _FakeCuda.replays += 1


def test_failed_capture_falls_back_cleanly(setup, monkeypatch):
    """FastLoop._capture's fallback, on the CPU with torch.cuda's graph API faked: the loop goes on
    without graphs, runs the step eagerly, reports the op's error (not capture_end's) and puts the
    caller's stream back."""
    G, D, fit, lr = setup
    loop = FastLoop(G, D, lr[:1], RLSEConfig(steps=3), fit, precision="fp32", impl="ref", graphs=False)
    loop.capture.enabled = True
    set_to = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: _FakeCuda.current)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda s: set_to.append(s))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeCuda.CUDAGraph)
    monkeypatch.setattr(torch.cuda, "graph", _FakeCapture)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "default_generators", (_FakeCuda.generator,))
    _FakeCuda.current = "caller-stream"
    body, calls = loop._iteration_body, []

    def syncing_body():  # the capture's iteration hits a host sync; later (eager) ones do not
        calls.append(_FakeCuda.current)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        body()

    loop._iteration_body = syncing_body
    with pytest.warns(RuntimeWarning, match="operation not permitted when stream is capturing"):
        loop._capture()
    assert loop.capture.graph is None and loop.capture.enabled is False
    assert loop.capture.error == "RuntimeError: CUDA error: operation not permitted when stream is capturing"
    assert set_to == ["caller-stream"]
    assert not _FakeCuda.generator.capturing and _FakeCuda.generator.seed == 7  # CUDA randomness works again
    assert int(loop.buffers.idx) == 1 and loop.buffers.loss_log[0].abs().sum() > 0  # the step ran eagerly, once
    # A capture that succeeds keeps the graph and replays it as the step.
    loop2 = FastLoop(G, D, lr[:1], RLSEConfig(steps=3), fit, precision="fp32", impl="ref", graphs=False)
    loop2.capture.enabled = True
    monkeypatch.setattr(torch.cuda, "graph", lambda graph: contextlib.nullcontext())
    _FakeCuda.replays = 0
    loop2._capture()
    assert isinstance(loop2.capture.graph, _FakeCuda.CUDAGraph) and loop2.capture.error is None and _FakeCuda.replays == 1


@cuda
def test_cuda_failed_capture_goes_on_eagerly(cuda_setup):
    """A host sync inside the captured iteration (as a future op might add) invalidates the capture:
    the loop warns, finishes without graphs, on the caller's stream, with the eager results."""
    G, D, fit, lr = cuda_setup
    cfg = RLSEConfig(steps=6)
    plain = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=False)
    loop = FastLoop(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=True)
    body = loop._iteration_body
    loop._iteration_body = lambda: (loop.buffers.best_loss.sum().item(), body())[1]
    stream = torch.cuda.current_stream()
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        for _ in range(cfg.steps):
            loop.step()
    assert loop.capture.graph is None and loop.capture.error
    assert torch.cuda.current_stream() == stream
    result = loop.result()
    loop.close()
    assert_same_trajectory(plain, result)
    # The failed capture left CUDA randomness and later captures working (before the fix, every
    # later torch.randn on the GPU raised "Offset increment outside graph capture").
    seed = torch.cuda.initial_seed()
    assert torch.randn(8, device="cuda").isfinite().all() and torch.cuda.initial_seed() == seed
    graphed = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2, 3], precision="fp32", graphs=True)
    assert_same_trajectory(plain, graphed)
