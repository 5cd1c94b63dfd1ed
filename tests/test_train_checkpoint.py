"""What travels between device machines: the sharded checkpoint, the packed data set, and a run
started from an exported prior."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY_PRIOR
from rlse_fast.cli import main
from rlse_fast.errors import UserError
from rlse_fast.train.checkpoint import MANIFEST_NAME, load_checkpoint, save_checkpoint
from rlse_fast.train.data import load_faces, pack_faces
from rlse_fast.train.pack import subset_pack
from rlse_fast.train.prior import TrainConfig, train

TINY = TINY_PRIOR
QUIET = dict(progress=False, log=lambda m: None)


@pytest.fixture
def faces_dir(face_folder):
    return face_folder(12, smooth=True, suffix=".png")


def _state(n: int) -> dict:
    torch.manual_seed(n)
    model = torch.nn.Linear(300, 200)
    opt = torch.optim.Adam(model.parameters(), betas=(0.0, 0.99))
    model(torch.randn(3, 300)).square().sum().backward()
    opt.step()
    return {"cur_nimg": n, "model": model.state_dict(), "opt_G": opt.state_dict(), "rng_cpu": torch.get_rng_state()}


def test_checkpoint_shards_round_trip_and_replace_the_old_ones(tmp_path):
    state = _state(100)
    manifest = save_checkpoint(tmp_path, state, shard_bytes=100_000)
    shards = json.loads(manifest.read_text())["shards"]
    assert len(shards) >= 3 and all((tmp_path / s["name"]).stat().st_size <= 100_000 for s in shards)
    back = load_checkpoint(tmp_path)
    torch.testing.assert_close(back["model"], state["model"], rtol=0, atol=0)
    assert torch.equal(back["rng_cpu"], state["rng_cpu"]) and back["cur_nimg"] == 100
    # beta1 = 0: Adam's first moment is not stored (it is the last gradient, rewritten before it is
    # read); it comes back as zeros, the second moment exactly.
    saved = state["opt_G"]["state"][0]
    loaded = back["opt_G"]["state"][0]
    assert torch.equal(loaded["exp_avg_sq"], saved["exp_avg_sq"]) and not loaded["exp_avg"].any()

    save_checkpoint(tmp_path, _state(200), shard_bytes=100_000)
    names = {p.name for p in tmp_path.glob("checkpoint-*.bin")}
    assert names == {s["name"] for s in json.loads((tmp_path / MANIFEST_NAME).read_text())["shards"]}
    assert load_checkpoint(tmp_path)["cur_nimg"] == 200


def test_damaged_or_missing_shard_is_a_one_line_error(tmp_path):
    save_checkpoint(tmp_path, _state(1), shard_bytes=100_000)
    shard = sorted(tmp_path.glob("checkpoint-*.bin"))[1]
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged"):
        load_checkpoint(tmp_path)
    shard.unlink()
    with pytest.raises(UserError, match="missing"):
        load_checkpoint(tmp_path)
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_packed_faces_are_the_crops_to_jpeg_precision(faces_dir, tmp_path):
    packed = tmp_path / "faces-16.faces"
    info = pack_faces(faces_dir, 16, packed, quality=95, progress=False)
    assert info["count"] == 12 and packed.stat().st_size == info["bytes"]
    crops = load_faces(faces_dir, 16, progress=False)
    back = load_faces(packed, 16, progress=False)
    assert back.shape == crops.shape and back.dtype == torch.uint8
    assert (back.float() - crops.float()).abs().mean() < 4
    with pytest.raises(UserError, match="16 px"):
        load_faces(packed, 32, progress=False)
    # A subset copies the JPEG bytes: the same images, exactly.
    part = subset_pack(packed, 3, 5, tmp_path / "part.faces")
    assert part["count"] == 5 and torch.equal(load_faces(tmp_path / "part.faces", 16), back[3:8])
    with pytest.raises(UserError, match="cannot take"):
        subset_pack(packed, 10, 5, tmp_path / "more.faces")
    with pytest.raises(UserError, match=".faces"):
        pack_faces(faces_dir, 16, tmp_path / "faces.bin", progress=False)


def test_init_from_an_exported_prior(faces_dir, tmp_path):
    first = train(faces_dir, tmp_path / "a", TrainConfig(kimg=0.012, **TINY), **QUIET)
    prior = tmp_path / "a" / "prior-16.safetensors"
    # A new run from the prior: its G, G_ema and D are the prior's (float16 -> float32), the
    # architecture comes from the prior, the image count continues from its.
    started = train(faces_dir, tmp_path / "b", TrainConfig(kimg=0.012, **{**TINY, "channel_max": 64}),
                    init_from=prior, **QUIET)
    assert started["cur_nimg"] == first["cur_nimg"]  # nothing left to train: only the copy
    from rlse_fast.checkpoints import load_gan

    a, b = load_gan(prior), load_gan(tmp_path / "b" / "prior-16.safetensors")
    for x, y in ((a.generator, b.generator), (a.discriminator, b.discriminator)):
        for (name, v), w in zip(x.state_dict().items(), y.state_dict().values()):
            assert torch.equal(v, w), name
    state = load_checkpoint(tmp_path / "b")
    for name, v in a.generator.state_dict().items():
        assert torch.equal(state["G"][name], v.float()) and torch.equal(state["G_ema"][name], v.float())
    more = train(faces_dir, tmp_path / "b", TrainConfig(kimg=0.020, **TINY), resume="auto", **QUIET)
    assert more["cur_nimg"] == 20


def test_cli_init_from_and_resume_exclude_each_other(faces_dir, tmp_path, capsys):
    code = main(["train-prior", str(faces_dir), str(tmp_path / "run"), "--resume", "--init-from", "x.safetensors"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "exclude each other" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
