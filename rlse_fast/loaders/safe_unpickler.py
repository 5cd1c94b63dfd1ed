"""A restricted unpickler: reads network pickles without running any code from the file.

Official pickles (StyleGAN2-ADA's `torch_utils.persistence` objects, TF StyleGAN's
`dnnlib.tflib.network.Network`) embed Python source that a normal unpickling executes. This
unpickler allow-lists only what tensors, numpy arrays and plain containers need, maps the network
classes to inert stand-ins that keep their state as data, and refuses any other global with a
one-line error naming it.
"""
from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError


class PersistentObject:
    """Stand-in for an object of a `torch_utils.persistence` class: its state, never its source."""

    def __init__(self, meta):
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise pickle.UnpicklingError("unexpected persistent-object metadata")
        self.class_name = meta.get("class_name")
        self.state = meta.get("state") or {}

    def state_dict(self, prefix="") -> dict[str, torch.Tensor]:
        """Flatten the nn.Module state (parameters, persistent buffers, submodules) like Module.state_dict."""
        out = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for name, t in (self.state.get("_parameters") or {}).items():
            if t is not None:
                out[prefix + name] = t.detach()
        for name, t in (self.state.get("_buffers") or {}).items():
            if t is not None and name not in skip:
                out[prefix + name] = t.detach()
        for name, mod in (self.state.get("_modules") or {}).items():
            if isinstance(mod, PersistentObject):
                out.update(mod.state_dict(prefix + name + "."))
        return out

    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})


class TFNetwork:
    """Stand-in for a TF StyleGAN `dnnlib.tflib.network.Network`: keeps the pickled state (a dict
    with 'variables', 'components', 'static_kwargs', ...) as data. TensorFlow's own __setstate__
    would exec `build_module_src`; this one only stores it, as a string, and never runs it."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected TF network state")
        self.state = state

    @property
    def name(self) -> str:
        return str(self.state.get("name", ""))

    def variables(self) -> dict:
        """{TF variable name: numpy array} of this network and its components ('mapping/...' ...)."""
        out = {}
        for name, value in self.state.get("variables") or []:
            out[str(name)] = value
        for comp_name, comp in (self.state.get("components") or {}).items():
            if isinstance(comp, TFNetwork):
                out.update({f"{comp_name}/{k}": v for k, v in comp.variables().items()})
        return out


class _EasyDict(dict):
    """dnnlib.util.EasyDict, as a plain dict."""


def _reconstruct_persistent_obj(meta):
    return PersistentObject(meta)


def _load_storage_bytes(b):
    # torch pickles storages as torch.save() bytes; read them back without executing code.
    return torch.load(io.BytesIO(b), weights_only=True)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("numpy object scalars are not allowed")
    return np.frombuffer(data, dtype=dtype)[0] if data is not None else dtype.type()


def _numpy_reconstruct(cls, shape, dtype):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray.__new__(cls, shape, dtype)


def _numpy_dtype(name, align=False, copy=False):
    dt = np.dtype(name, align, copy)
    if dt.hasobject:
        raise pickle.UnpicklingError("numpy object dtypes are not allowed")
    return dt


def _rebuild_from_type_v2(func, new_type, args, state):
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise pickle.UnpicklingError(f"tensor subclass {new_type} is not allowed")
    ret = func(*args)
    if type(ret) is not new_type:
        ret = ret.as_subclass(new_type)
    return ret


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "device"): torch.device,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
}


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module, name):
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a pickle (is this a torch.save file?)")


def safe_unpickle(path: Path):
    """Unpickle with the allow-list; a refused global becomes a one-line UserError naming it."""
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f).load()
    except RefusedGlobal as exc:
        raise UserError(f"{path}: refusing to load: the pickle references {exc.qualname}, which is not allowed "
                        "(only tensors and plain containers are); use a trusted StyleGAN checkpoint") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise UserError(f"{path}: not a readable StyleGAN pickle ({short(exc)}); the file may be truncated, re-download it") from None




def short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


