"""The C++ CPU extension itself: what `auto` dispatches to, the ISA builds' bit-identical results,
the `kernels` command's report, the bindings' argument checks and the lazy import (the package
imports and falls back to the references without the extension)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from op_checks import (
    grads,
    needs_cpp,
)

from rlse_fast.ops import (
    bias_act,
    downsample2d,
    modulate,
    setup_filter,
    upsample2d,
)
from rlse_fast.ops.adain import adain_epilogue
from rlse_fast.ops.downsample_loss import downsample_loss

pytestmark = needs_cpp


# --- dispatch, bindings, lazy import -------------------------------------------------------------

def test_auto_picks_cpp_on_cpu():
    from rlse_fast import _C
    from rlse_fast.ops import cpp_ops, dispatch

    x = torch.randn(2, 3)
    for op in ("bias_act", "upfirdn2d", "downsample_loss", "modulate", "adain_epilogue"):
        assert dispatch.pick(op, "auto", x) is dispatch._REGISTRY[op]["cpp"][0]
        for dtype in (torch.float16, torch.bfloat16):
            fast = dtype in cpp_ops.auto_dtypes(_C.cpu_isa())[op]
            assert (dispatch.pick(op, "auto", x.to(dtype)) is not None) == fast
    assert cpp_ops.auto_dtypes("avx2")["bias_act"] == cpp_ops.DTYPES
    assert torch.float16 not in cpp_ops.auto_dtypes("base")["bias_act"]  # software fp16: slower than ref
    assert dispatch.pick("bias_act", "auto", x.int()) is None  # no kernel for int: the reference
    assert dispatch.pick("bias_act", "cpp", x.half()) is dispatch._REGISTRY["bias_act"]["cpp"][0]
    with pytest.raises(RuntimeError, match="cannot run"):
        dispatch.pick("bias_act", "cpp", x.int())


def test_a_block_impl_without_the_op_takes_auto():
    from rlse_fast.ops import dispatch

    x = torch.randn(2, 3)
    dispatch.pick("bias_act", "auto", x)  # loads the native modules
    if "triton" in dispatch._UNAVAILABLE:
        pytest.skip("triton is not installed")
    cpp = dispatch._REGISTRY["upfirdn2d"]["cpp"][0]
    with dispatch.using("triton"):  # no Triton upfirdn2d: the best there is
        assert dispatch.pick("upfirdn2d", "auto", x) is cpp
    with pytest.raises(RuntimeError, match="not available"):  # asked for by name, it is an error
        dispatch.pick("upfirdn2d", "triton", x)


def _isa_outputs(isa, dtype):
    """Outputs and gradients of every op through the kernel build `isa`, at sizes that take both
    the vector loops and their tails (and, for bias_act, several conversion tiles)."""
    from rlse_fast import _C

    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(shape, generator=g).to(dtype)

    cases = [
        lambda x, b: bias_act(x, b, act="lrelu", impl="cpp"),                        # a bias per run
        lambda x, b: bias_act(x, b, act="relu", clamp=0.7, impl="cpp"),              # the xref path
        lambda x, b: bias_act(x.reshape(-1, 37), b[:37], act="lrelu", impl="cpp"),   # bias innermost
        lambda x, b: upsample2d(x, setup_filter([1, 3, 3, 1]), impl="cpp"),
        lambda x, b: downsample2d(x, setup_filter([1, 3, 3, 1]), impl="cpp"),
        lambda x, b: downsample_loss(x, lo, 4, impl="cpp"),
        lambda x, b: modulate(x[:, :, :9].reshape(2, 37, 9, 4, 7), x[:, 0, 0, :9] + 2, impl="cpp"),  # 28 taps
        lambda x, b: adain_epilogue(x, x[:1, :1], b, b.float(), x[:, :, 0, 0].float() + 1, x[:, :, 1, 0].float(),
                                    impl="cpp"),
    ]
    x, b, lo = rnd(2, 37, 20, 28), rnd(37), rnd(2, 37, 5, 7)
    before = _C.set_cpu_isa(isa)
    try:
        return [grads(fn, x, b) for fn in cases]
    finally:
        _C.set_cpu_isa(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cpu_builds_are_bit_identical(dtype):
    # The AVX2 build does the operations of the baseline build in the same order (no FMA), with F16C
    # conversions that round like the software ones: the results must be identical, bit for bit.
    from rlse_fast import _C

    if "avx2" not in _C.cpu_isas():
        pytest.skip("this CPU or build has no AVX2 kernels")
    base, avx2 = _isa_outputs("base", dtype), _isa_outputs("avx2", dtype)
    for (y0, g0), (y1, g1) in zip(base, avx2):
        assert torch.equal(y0, y1)
        for a, c in zip(g0, g1):
            assert (a is None and c is None) or torch.equal(a, c)


def test_cpu_isa_choice():
    from rlse_fast import _C

    assert "base" in _C.cpu_isas() and _C.cpu_isa() in _C.cpu_isas()
    with pytest.raises(RuntimeError, match="unknown kernel build 'sse9'"):
        _C.set_cpu_isa("sse9")
    # RLSE_CPU_ISA=base selects the baseline build; by default the best the CPU runs.
    code = "import torch; from rlse_fast import _C; print(_C.cpu_isa(), _C.cpu_isas()[-1])"
    for env, want in (("base", "base"), ("auto", None)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "RLSE_CPU_ISA": env})
        assert out.returncode == 0, out.stderr
        got, best = out.stdout.split()
        assert got == (want or best)


def test_kernels_command_reports_the_build(capsys):
    import json

    from rlse_fast import _C
    from rlse_fast.cli import main
    from rlse_fast.ops import cpp_ops

    assert main(["kernels", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["impls"]["cpp"] == "available" and info["cpu_isa"] == _C.cpu_isa()
    want = cpp_ops.auto_dtypes(_C.cpu_isa())
    for dtype, row in info["auto"]["cpu"].items():
        for op, impl in row.items():
            # an op without a C++ kernel runs its reference on the CPU
            assert impl == ("cpp" if getattr(torch, dtype) in want.get(op, ()) else "ref"), (dtype, op)
    if not torch.version.cuda:
        assert "CPU build" in info["impls"]["cuda"]
    assert main(["kernels"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("auto on cpu float32:"))
    assert "bias_act cpp" in line and "adain_epilogue cpp" in line


def test_bindings_check_arguments():
    from rlse_fast import _C

    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(RuntimeError, match="f must be Float"):
        _C.upfirdn2d(x, torch.ones(2, 2, dtype=torch.float64), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    with pytest.raises(RuntimeError, match="contiguous"):
        _C.bias_act(x.transpose(2, 3), torch.empty(0), torch.empty(0), torch.empty(0), 0, 1, 1, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="b must have shape"):
        _C.bias_act(x, torch.ones(3), torch.empty(0), torch.empty(0), 0, 1, 1, 0.0, 1.0, -1.0)


def test_lazy_import_and_missing_extension():
    # In a fresh interpreter: importing the package does not load the extension; with the extension
    # made unimportable, 'auto' falls back to the reference and 'cpp' says how to rebuild.
    code = """
import sys
import torch
import rlse_fast, rlse_fast.ops
assert 'rlse_fast._C' not in sys.modules, 'extension loaded at import'
sys.modules['rlse_fast._C'] = None  # makes `import rlse_fast._C` raise ImportError
from rlse_fast.ops import bias_act
x = torch.randn(2, 3)
bias_act(x, torch.randn(3), act='lrelu')
try:
    bias_act(x, None, act='relu', impl='cpp')
except RuntimeError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    msg = out.stdout.strip()
    assert "\n" not in msg and "pip install --no-build-isolation ." in msg, msg
