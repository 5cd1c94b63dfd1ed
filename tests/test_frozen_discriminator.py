"""What the op census (benchmarks/count_iteration_ops.py) showed should not be in an iteration, gone:
the frozen discriminator the fast loop runs (`models.registry.prepare_discriminator`), whose run-time
weights made once give the plain D's features bit for bit, with none of the per-call work (gain
products, casts) of the plain D; the objective's casts of its target features; L_s's copies of NHWC
features; StyleGAN v1's blur filter casts. Each against the previous path's values."""
import copy

import pytest
import torch

from rlse_fast.engine import semantic
from rlse_fast.engine.fast import ops_impl
from rlse_fast.models import registry
from rlse_fast.models.frozen import RunTime
from rlse_fast.models.stylegan1.layers import blur, blur_filter
from rlse_fast.ops import upfirdn2d

BACKBONES = ("stylegan2", "stylegan1")
pytestmark = pytest.mark.usefixtures("one_thread")


def _autocast(dtype):
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)


def _features(D, lr, channels_last):
    mode = semantic.input_mode(D)
    names = semantic.block_names(D, 3, lr.shape[-1], mode)
    return semantic.features(D, lr, names, channels_last=channels_last, mode=mode)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("impl", ["cpp", "ref"])
def test_prepared_d_gives_the_plain_features_bit_for_bit(census_nets, backbone, dtype, channels_last, impl):
    """At 16 px (v1: its own fromRGB, unfused blocks) and 64 px (v1: the fused down-sampling conv on
    the CPU; SG2: every block) and D's logits; the plain D in the same layout, as the loop ran it."""
    _, D = census_nets[backbone]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    plain = copy.deepcopy(D).to(memory_format=fmt)
    prepared = registry.prepare_discriminator(D, dtype, fmt)
    assert type(prepared) is type(D) and prepared is not D
    gen = torch.Generator().manual_seed(1)
    for size in (16, 64):
        lr = torch.rand(2, 3, size, size, generator=gen)
        with ops_impl(impl), _autocast(dtype), torch.no_grad():
            a, b = _features(plain, lr, channels_last), _features(prepared, lr, channels_last)
            logits = (plain(lr * 2 - 1), prepared(lr * 2 - 1)) if size == D.img_resolution else None
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.stride() == y.stride()
            assert torch.equal(x, y)
        if logits is not None:
            assert torch.equal(*logits)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_prepared_d_is_stored_once_in_the_run_dtype_and_layout(census_nets, backbone):
    _, D = census_nets[backbone]
    before = {k: v.clone() for k, v in D.state_dict().items()}
    P = registry.prepare_discriminator(D, torch.bfloat16, torch.channels_last)
    weights = [m for name, m in P.named_modules() if isinstance(m, RunTime) and name.endswith("weights")]
    assert weights
    for rt in weights:
        stored = dict(rt.named_buffers())
        assert all(t.dtype == torch.bfloat16 for t in stored.values())
        assert all(t.is_contiguous(memory_format=torch.channels_last) for t in stored.values() if t.shape[-1] > 1)
        # One tensor for both contexts (the image's fp32, the blocks' bf16) unless the weight is a
        # kernel made in the input's dtype (v1's fused down-sampling 4x4 kernel).
        assert len(stored) == 1 or (backbone == "stylegan1" and len(stored) == 2)
    # No fp32 conv weight left, and none of D's parameters (the dense layers aside) kept.
    conv_params = [n for n, _ in P.named_parameters() if not n.startswith(("b4.fc", "b4.out"))]
    assert conv_params == []
    for k, v in D.state_dict().items():  # the caller's D untouched
        assert torch.equal(v, before[k]) and v.is_contiguous()


def test_prepared_d_refuses_a_precision_it_was_not_made_for(census_nets):
    _, D = census_nets["stylegan2"]
    P = registry.prepare_discriminator(D, torch.bfloat16)
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad(), pytest.raises(RuntimeError, match="prepared for"):
        _features(P, lr, False)  # fp32, no autocast: its fp32 weights are gone


class ConstantWork(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the ops (views, allocations aside) whose tensor inputs all need no gradient: with the
    input image requiring one, that is work on the frozen weights alone, the same on every call."""

    SKIP = {"empty", "empty_like", "empty_strided", "zeros", "zeros_like", "lift_fresh", "_unsafe_view"}

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        name = func._overloadpacket.__name__
        if tensors and not func.is_view and name not in self.SKIP and not any(t.requires_grad for t in tensors):
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_prepared_d_does_no_work_on_its_weights(census_nets, backbone, dtype):
    """The plain D multiplies every weight by its gain and, under autocast, casts weights and biases
    on every call; the prepared one does none of it. What is left: under bf16 with the native ops,
    the first layer's fp32 bias (its input, the image, is fp32) cast by bias_act to its bf16 output."""
    _, D = census_nets[backbone]
    lr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    counts = {}
    for what, net in (("plain", D), ("prepared", registry.prepare_discriminator(D, dtype))):
        with ops_impl("cpp"), _autocast(dtype), ConstantWork() as mode:
            _features(net, lr, False)
        counts[what] = mode.ops
    assert len(counts["plain"]) >= 10, counts["plain"]
    assert counts["prepared"] == ([] if dtype is None else ["_to_copy"]), counts["prepared"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_iteration_census_no_constant_casts_from_d_or_the_objective(census, backbone):
    """One warm bf16 iteration of the fast loop (the census): no cast of a constant attributed to the
    discriminator or the objective but the first layer's bias (above); before the preparation SG2's
    D made 22 and the objective 3 (the target features, now kept in fp32)."""
    loop = census.make_loop(backbone, "bf16", False)
    loop.step()
    sites = census.census(loop)["sites"]
    const = [(site, n) for phase, cls, name, site, n in sites if name == "_to_copy(const)"
             and ("discriminator.py" in site or "objective.py" in site)]
    assert len(const) == 1 and const[0][1] == 1 and "bias_act" in const[0][0], const
    # ... and no feature copies for the loss: L_s reduces NHWC features in place.
    nhwc = census.make_loop(backbone, "bf16", True)
    nhwc.step()
    assert not [s for s in census.census(nhwc)["sites"] if "semantic_loss" in s[3]]


def test_a_discriminator_of_no_backbone_runs_as_it_is():
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)).requires_grad_(False)
    assert registry.prepare_discriminator(D, torch.bfloat16) is D
    nhwc = registry.prepare_discriminator(D, None, torch.channels_last)
    assert nhwc is not D and nhwc[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert D[0].weight.is_contiguous()


class Ops(torch.utils._python_dispatch.TorchDispatchMode):
    """The names of the aten ops dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func._overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("impl", ["cpp", "ref"])
def test_v1_blur_passes_its_filter_uncast(dtype, impl):
    """The same output as with the filter cast to x's dtype (its taps are exact in bf16), and with the
    native kernel no cast at all (it was cast to bf16, then back to fp32 by the binding)."""
    x = torch.randn(2, 8, 13, 13, generator=torch.Generator().manual_seed(0)).to(dtype)
    with ops_impl(impl), Ops() as ops:
        y = blur(x)
    assert torch.equal(y, upfirdn2d(x, blur_filter(x.device).to(dtype), padding=1, impl=impl))
    if impl == "cpp":
        assert "_to_copy" not in ops.names


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_semantic_loss_reduces_nhwc_features_without_a_copy(reduction):
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(3, c, s, s, generator=gen) for c, s in ((16, 8), (32, 4), (64, 2))]
    target = [torch.randn(f.shape, generator=gen) for f in feats]

    def flattened(a, b):  # the previous formula
        d = (a - b).abs().flatten(1)
        return d.mean(1) if reduction == "mean" else d.sum(1)

    old = sum(flattened(a, b) for a, b in zip(feats, target))
    assert torch.equal(semantic.semantic_loss(feats, target, reduction), old)  # NCHW: the same sums
    cl = [f.contiguous(memory_format=torch.channels_last) for f in feats]
    tcl = [t.contiguous(memory_format=torch.channels_last) for t in target]
    with Ops() as ops:
        new = semantic.semantic_loss(cl, tcl, reduction)
    assert "clone" not in ops.names and "copy_" not in ops.names
    torch.testing.assert_close(new, old, rtol=1e-6, atol=0)
