"""The FLOP model (rlse_fast/flops.py) against torch's FlopCounterMode over the eager engine."""
import pytest
import torch
from gan_files import tiny_gan
from torch.utils.flop_counter import FlopCounterMode

from rlse_fast import flops, gaussian_fit
from rlse_fast.config import RLSEConfig
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.fast import ops_impl
from rlse_fast.models.stylegan2 import DiscriminatorConfig, GeneratorConfig

pytestmark = pytest.mark.usefixtures("one_thread")



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
