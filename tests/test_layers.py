"""The package's import structure: no import cycle between modules, and every import (at module level
or inside a function) goes down the layers that docs/architecture.md describes, never up or sideways."""
from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rlse_fast"

# Bottom to top. A module may import its own room (the same top-level module or sub-package) and the
# rooms of lower layers only.
LAYERS = (
    {"errors", "home", "moved", "openmp"},
    {"config", "imageio", "memory", "devices", "noise_level", "downsample", "assets"},
    {"ops", "launch", "metrics"},
    {"models"},
    {"loaders"},
    {"checkpoints", "weights", "gaussian_fit", "flops"},
    {"engine", "train"},
    {"session"},
    {"faces"},
    {"evaluate", "api"},
    {"commands"},
    {"cli"},
    {"__main__", "__init__"},
)


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports, anywhere in its body."""
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        pkg = name.split(".") if is_pkg and name != "rlse_fast.__init__" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = pkg[:len(pkg) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        # The package itself (`from .. import _C` reaches an extension through it) runs before any of
        # its modules anyway: importing it is no edge.
        edges[name] = {t for t in found if t in mods and t != name and t != "rlse_fast"}
    return edges


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    r = room(module)
    for i, rooms in enumerate(LAYERS):
        if r in rooms:
            return i
    raise AssertionError(f"{module}: its room {r!r} is in no layer of LAYERS (add it where it belongs)")


def test_every_module_has_a_layer():
    for m in modules():
        layer(m)


def test_imports_go_down_the_layers():
    mods = modules()
    wrong = []
    for a, targets in imports(mods).items():
        for b in targets:
            if room(a) != room(b) and layer(b) >= layer(a):
                wrong.append(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    edges = imports(modules())
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The two tests above fail where they should: on a package with a cycle and an upward import."""
    pkg = tmp_path / "rlse_fast"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from .ops import x\n")
    (pkg / "ops" / "__init__.py").write_text("def f():\n    from ..errors import UserError\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    with pytest.raises(AssertionError, match=r"rlse_fast\.errors \(layer 0\) imports rlse_fast\.ops \(layer 2\)"):
        test_imports_go_down_the_layers()
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle()


@pytest.mark.parametrize("old, new, name", [
    ("rlse_fast.explore", "rlse_fast.engine.eager", "super_resolve"),
    ("rlse_fast.fast", "rlse_fast.engine.fast", "super_resolve_fast"),
    ("rlse_fast.fast", "rlse_fast.engine.select", "pick_engine"),
    ("rlse_fast.fast", "rlse_fast.devices", "pick_device"),
    ("rlse_fast.semantic", "rlse_fast.engine.semantic", "features"),
    ("rlse_fast.geocross", "rlse_fast.engine.geocross", "geocross"),
    ("rlse_fast.pixel_loss", "rlse_fast.engine.pixel_loss", "pixel_loss"),
    ("rlse_fast.spherical", "rlse_fast.engine.spherical", "SphericalOptimizer"),
    ("rlse_fast.schedule", "rlse_fast.engine.schedule", "SCHEDULES"),
    ("rlse_fast.evaluate.frames", "rlse_fast.faces.frames", "FFHQ"),
    ("rlse_fast.metrics.assets", "rlse_fast.assets", "require"),
    ("rlse_fast.models.stylegan1_discriminator", "rlse_fast.models.stylegan1.discriminator", "Discriminator"),
    ("rlse_fast.models.stylegan1_layers", "rlse_fast.models.stylegan1.layers", "adain_epilogue"),
    ("rlse_fast.loaders.stylegan1_state", "rlse_fast.models.stylegan1.state_dict", "infer_generator_config"),
    ("rlse_fast.loaders.architecture", "rlse_fast.models.channels", "channel_params"),
])
def test_moved_names_still_import_with_a_warning(old, new, name):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    # attributed to the importing line, so that Python's default filters show it where __main__ imports
    assert any(issubclass(w.category, DeprecationWarning) and str(w.message).startswith(f"{old} moved to ")
               and w.filename == __file__ for w in caught)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_lazy_imports_keep_the_package_and_the_parser_light():
    """The imports that stay inside functions (docs/architecture.md): `import rlse_fast` and the entry
    point load no torch (the command sets OpenMP's wait policy first); building every subcommand's
    parser loads none of what only running a command needs."""
    code = ("import sys, rlse_fast, rlse_fast.cli; print('torch' in sys.modules); rlse_fast.cli.build_parser(); "
            "print(*sorted(m for m in ('PIL', 'safetensors', 'matplotlib', 'dlib', 'rlse_fast.session', "
            "'rlse_fast.checkpoints', 'rlse_fast.faces', 'rlse_fast.metrics', 'rlse_fast.launch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["False", ""]
