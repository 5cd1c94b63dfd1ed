import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Without a GPU, Triton kernels run in its interpreter; it reads this when triton is first imported,
# which any test that dispatches an op may trigger, so set it before every test module.
try:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    else:
        # The tests compare float32 kernels with float32 references, some of which run cuDNN
        # convolutions: PyTorch lets those use TensorFloat-32 by default (~1e-3 relative error).
        # The legacy flags on purpose: mixing them with the new fp32_precision API makes later
        # reads of the legacy ones raise (torch 2.11).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
except ImportError:
    pass

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny ops: a second one only adds waiting, badly so on a
    loaded machine. Modules take it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def reference():
    """Load a tensor file from ../shared/reference, skipping when the folder is absent."""
    def load(name):
        path = SHARED / "reference" / f"{name}.safetensors"
        if not path.is_file():
            pytest.skip(f"{path} is absent (../shared/reference provides it)")
        from safetensors.torch import load_file

        return load_file(str(path))

    return load


@pytest.fixture
def rlse_home(tmp_path, monkeypatch):
    """A private RLSE_FAST_HOME (cache of weights and Gaussian fits) for one test."""
    home = tmp_path / "rlse-home"
    monkeypatch.setenv("RLSE_FAST_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def census(bench_script):
    """benchmarks/count_iteration_ops.py: the op census of one fast iteration, its networks and loops."""
    return bench_script("count_iteration_ops")


@pytest.fixture(scope="module")
def census_nets(census):
    """{backbone: (G, D)}: the census' small random-weight networks of both backbones (64 px)."""
    return {b: census.networks(b) for b in ("stylegan2", "stylegan1")}


@pytest.fixture(scope="module")
def bench_script():
    """Import a script of benchmarks/ by name (they are scripts, not a package)."""
    import importlib

    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(folder)


# A prior small enough to train a few steps in a test (16 px, about 40 k parameters).
TINY_PRIOR = dict(resolution=16, z_dim=32, mapping_layers=1, channel_base=256, channel_max=32, batch=4,
                  threads=1, device="cpu", sample_minutes=0, checkpoint_minutes=60, export_minutes=60)


@pytest.fixture
def face_folder(tmp_path, rlse_home):
    """make(n, smooth=False, suffix='.jpg') -> a folder of n 'faces' of CelebA's aligned size (89x109):
    uniform noise, or smooth colour waves (which survive a JPEG re-encode)."""
    import numpy as np
    from PIL import Image

    def make(n: int = 12, smooth: bool = False, suffix: str = ".jpg") -> Path:
        folder = tmp_path / "faces"
        folder.mkdir()
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:109, 0:89]
        for i in range(n):
            if smooth:
                img = np.stack([127 + 100 * np.sin(xx / (20 + i) + c / 3) * np.cos(yy / 25) for c in range(3)], axis=2)
            else:
                img = rng.integers(0, 256, (109, 89, 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:06d}{suffix}")
        return folder

    return make
