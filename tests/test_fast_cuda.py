"""The fast engine's CUDA graphs: replays against the eager iterations, bf16 on a card, the scoped
cuDNN benchmark flag, and the fallback when a capture fails (faked on the CPU, real on a card).
CUDA tests skip without a GPU; benchmarks/gpu_check.sh runs them on one.
"""
import contextlib

import pytest
import torch
from fast_runs import assert_same_trajectory, tiny_setup
from gan_files import tiny_gan

from rlse_fast.config import RLSEConfig
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.fast import FastLoop, super_resolve_fast

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    return tiny_setup()


@pytest.fixture(scope="module")
def cuda_setup(setup):
    _, _, fit, lr = setup
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
