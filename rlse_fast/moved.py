"""Old import paths of modules that moved, kept working for one release with a DeprecationWarning.

The old files are gone (so that git carries edits made on other branches onto the new paths); a
finder on sys.meta_path answers for the old names instead, with a module that looks its
attributes up in the new ones.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

MOVED: dict[str, tuple[str, ...]] = {
    "rlse_fast.explore": ("rlse_fast.engine.eager", "rlse_fast.engine.state"),
    "rlse_fast.fast": ("rlse_fast.engine.fast", "rlse_fast.engine.select", "rlse_fast.engine.objective",
                       "rlse_fast.devices"),
    "rlse_fast.geocross": ("rlse_fast.engine.geocross",),
    "rlse_fast.pixel_loss": ("rlse_fast.engine.pixel_loss",),
    "rlse_fast.semantic": ("rlse_fast.engine.semantic",),
    "rlse_fast.spherical": ("rlse_fast.engine.spherical",),
    "rlse_fast.schedule": ("rlse_fast.engine.schedule",),
    "rlse_fast.evaluate.frames": ("rlse_fast.faces.frames",),
    "rlse_fast.metrics.assets": ("rlse_fast.assets",),
    "rlse_fast.models.stylegan1_discriminator": ("rlse_fast.models.stylegan1.discriminator",),
    "rlse_fast.models.stylegan1_layers": ("rlse_fast.models.stylegan1.layers",),
    "rlse_fast.loaders.stylegan1_state": ("rlse_fast.models.stylegan1.state_dict",),
    "rlse_fast.loaders.architecture": ("rlse_fast.models.channels",),
}
"""Old module name -> the modules that now hold its names, searched in order."""


class _Forward(types.ModuleType):
    def __getattr__(self, name: str):
        for target in MOVED[self.__name__]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r} (it moved to {MOVED[self.__name__][0]})")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A module that moved whole is the new module itself under its old name too (so that setting an
    attribute through either name is seen through both); one whose names went to several modules is
    a `_Forward`."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name][0]}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=_importer_level())
        if len(MOVED[spec.name]) > 1:
            return _Forward(spec.name)
        module = importlib.import_module(MOVED[spec.name][0])
        self._specs[spec.name] = module.__spec__  # the import machinery sets the old name's spec on it
        return module

    def exec_module(self, module) -> None:
        if isinstance(module, _Forward):
            for target in MOVED[module.__name__]:
                importlib.import_module(target)
            return
        old = next(name for name, spec in self._specs.items() if spec.name == module.__name__)
        module.__spec__ = self._specs.pop(old)


def _importer_level() -> int:
    """The warnings stacklevel of the code that imported the old name: past this module's frames and
    the import machinery's, so that the default filters (shown where __main__ imports) apply."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        internal = "importlib" in name and "_bootstrap" in name  # frames warnings.warn does not count
        if not internal and name not in (__file__, importlib.__file__):
            return level
        frame = frame.f_back
        level += 0 if internal else 1
    return level


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())  # before any path finder: an old file left on disk must not win
