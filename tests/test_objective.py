"""The objective both drivers share: its terms against the loss modules they come from, the weighted
total, the kept-iterate rule, and the names every consumer reads (history, metrics.csv, report)."""
import pytest
import torch

from gan_files import tiny_gan
from rlse_fast import gaussian_fit
from rlse_fast.config import RLSEConfig
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.engine import semantic
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.geocross import geocross
from rlse_fast.engine.objective import LOSS_NAMES, TERMS, Objective
from rlse_fast.evaluate.methods import COLUMNS
from rlse_fast.evaluate.report import LOSS_TERMS


@pytest.fixture(scope="module")
def batch():
    G, D = tiny_gan(seed=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=gen), None)
        img01 = (G.synthesis(ws) + 1) / 2
    lr = bicubic_downsample_ref(torch.rand(2, 3, 32, 32, generator=gen), 4)
    return G, D, ws, img01, lr


@pytest.mark.parametrize("mode", ["rlse", "pulse"])
def test_terms_are_the_loss_modules_and_the_total_their_weighted_sum(batch, mode):
    G, D, ws, img01, lr = batch
    cfg = RLSEConfig.from_mode(mode, steps=1)
    terms = Objective(D, lr, cfg, 4).terms(ws, img01)
    assert tuple(terms) == LOSS_NAMES
    sse = ((bicubic_downsample_ref(img01, 4) - lr) ** 2).sum((1, 2, 3))
    pixel = sse.sqrt() * cfg.pixel_scale if cfg.pixel_loss == "norm" else (sse / lr[0].numel()).clamp(min=cfg.eps)
    torch.testing.assert_close(terms["pixel"], pixel, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["geocross"], geocross(ws))
    if cfg.semantic:
        mode_in = semantic.input_mode(D, cfg.semantic_input)
        names = semantic.block_names(D, cfg.semantic_blocks, 8, mode_in)
        want = semantic.semantic_loss(semantic.features(D, bicubic_downsample_ref(img01, 4), names, mode=mode_in),
                                      semantic.features(D, lr, names, mode=mode_in), cfg.semantic_reduction)
        torch.testing.assert_close(terms["semantic"], want)
        assert (terms["semantic"] > 0).all()
    else:
        assert (terms["semantic"] == 0).all()
    total = sum(getattr(cfg, weight) * terms[name] for name, weight, _ in TERMS)
    torch.testing.assert_close(terms["total"], total)


def test_kept_iterate_rule():
    total, best = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])
    lr = torch.zeros(2, 3, 8, 8)
    best_rule = Objective(None, lr, RLSEConfig.from_mode("pulse", keep="best"), 4)
    last_rule = Objective(None, lr, RLSEConfig.from_mode("pulse", keep="last"), 4)
    assert best_rule.better(total, best).tolist() == [True, False]
    assert last_rule.better(total, best).tolist() == [True, True]


def test_every_consumer_reads_the_names_from_the_objective(batch):
    G, D, ws, img01, lr = batch
    fit = gaussian_fit.compute(G, 1024)
    res = super_resolve(G, D, lr, RLSEConfig(steps=2), fit)
    assert set(res.history[0]) == {"step", "lr", *LOSS_NAMES}
    assert [c for c in COLUMNS if c.startswith("loss_")] == [f"loss_{name}" for name, _, _ in TERMS]
    assert [col for col, _, _ in LOSS_TERMS] == [f"loss_{name}" for name, _, _ in TERMS]
