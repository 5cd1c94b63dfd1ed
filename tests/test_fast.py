"""The fast engine (rlse_fast/engine/fast.py) against the eager one (engine.eager.super_resolve) on the CPU.

On the CPU the fast path (fp32, no graphs) runs the very iteration that CUDA captures; with the
reference ops everywhere it must reproduce the eager engine bit for bit (asserted with a tight
tolerance, so a harmless reordering in a future torch does not break it). CUDA graphs, bf16 on a
card and the capture's fallback: tests/test_fast_cuda.py; the FLOP model: tests/test_flops.py.
"""
import math

import pytest
import torch
from fast_runs import assert_same_result, assert_same_trajectory, eager_ref, tiny_setup

from rlse_fast.config import RLSEConfig
from rlse_fast.engine.fast import FastLoop, ops_impl, schedule_table, super_resolve_fast
from rlse_fast.engine.select import run
from rlse_fast.ops import dispatch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    return tiny_setup()


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

