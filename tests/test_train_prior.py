"""The prior's training loop on a tiny config: it runs, resumes, exports; the CLI rejects bad data."""
from __future__ import annotations

import json
import os
import signal
import math

import pytest
import torch

from conftest import TINY_PRIOR
from rlse_fast.cli import main
from rlse_fast.models.stylegan2 import Discriminator, Generator
from rlse_fast.train.data import CropSpec, FaceSampler, load_faces
from rlse_fast.train.checkpoint import load_checkpoint
from rlse_fast.train.prior import TrainConfig, reference_ops, train

TINY = TINY_PRIOR


@pytest.fixture
def faces_dir(face_folder):
    """Twelve random 'faces' in the CelebA aligned size (89x109), as JPEGs."""
    return face_folder(12)


def test_crop_matches_celeba_framing():
    # 72x72 at 89x109, centred horizontally, 29.5 px from the top (the celeba128_test framing).
    left, top, right, bottom = CropSpec().box(89, 109)
    assert (left, top, right, bottom) == pytest.approx((8.5, 29.5, 80.5, 101.5))
    assert CropSpec().box(178, 218) == pytest.approx((17, 59, 161, 203))


def test_dataset_is_cached_and_sampler_resumes(faces_dir, rlse_home):
    faces = load_faces(faces_dir, 16, progress=False)
    assert faces.shape == (12, 3, 16, 16) and faces.dtype == torch.uint8
    assert len(list((rlse_home / "datasets").iterdir())) == 1
    assert torch.equal(load_faces(faces_dir, 16, progress=False), faces)

    a = FaceSampler(faces, 4, seed=1)
    a.next()
    state = a.state_dict()
    expected = [a.next() for _ in range(4)]  # crosses an epoch boundary
    b = FaceSampler(faces, 4, seed=2)
    b.load_state_dict(state)
    for want in expected:
        got = b.next()
        assert torch.equal(got, want) and got.min() >= -1 and got.max() <= 1


def test_train_resume_export(faces_dir, tmp_path):
    run = tmp_path / "run"
    export = tmp_path / "shipped" / "prior16.safetensors"
    first = train(faces_dir, run, TrainConfig(kimg=0.012, **TINY), export_to=export, progress=False, log=lambda m: None)
    assert first["cur_nimg"] == 12
    assert all(math.isfinite(first[k]) for k in ("loss_G", "loss_D", "r1"))
    ckpt = load_checkpoint(run)
    assert ckpt["cur_nimg"] == 12 and ckpt["batch_idx"] == 3
    assert (run / "samples" / "latest.png").is_file()

    # Resume: continues from 12 images (the architecture comes from the checkpoint).
    second = train(faces_dir, run, TrainConfig(kimg=0.020, **{**TINY, "channel_max": 64}), resume="auto",
                   export_to=export, progress=False, log=lambda m: None)
    assert second["cur_nimg"] == 20
    assert math.isfinite(second["loss_G"]) and math.isfinite(second["loss_D"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["kimg"] for entry in log] == [0.012, 0.02]

    # --minutes 0 with a checkpoint only re-exports.
    third = train(faces_dir, run, TrainConfig(minutes=0, **TINY), resume="auto", progress=False, log=lambda m: None)
    assert third["cur_nimg"] == 20
    # Its log line is strict JSON: the losses of a run without steps are null, not NaN.
    def no_nan(name):
        raise AssertionError(f"log.jsonl holds {name}")

    last = json.loads((run / "log.jsonl").read_text().splitlines()[-1], parse_constant=no_nan)
    assert last["kimg"] == 0.02 and last["loss_G"] is None

    checkpoints = pytest.importorskip("rlse_fast.checkpoints")
    for path in (export, run / "prior-16.safetensors"):
        gan = checkpoints.load_gan(path)
        assert gan.generator.cfg.img_resolution == 16 and gan.discriminator is not None
        assert gan.metadata["kimg"] == "0.020"
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
        assert path.stat().st_size < 10 * 2**20
    # The exported generator is the EMA: it matches the checkpoint's G_ema to float16 precision.
    gan = checkpoints.load_gan(export)
    ema = load_checkpoint(run)["G_ema"]
    for name, value in gan.generator.state_dict().items():
        torch.testing.assert_close(value.float(), ema[name].half().float())


def test_default_architecture_fits_the_size_limit():
    cfg = TrainConfig()
    n = sum(p.numel() for m in (Generator(cfg.generator_config()), Discriminator(cfg.discriminator_config()))
            for p in m.state_dict().values())
    assert 2 * n < 10 * 2**20  # float16 bytes


def test_reference_ops_restores_dispatch():
    from rlse_fast.ops import dispatch

    x = torch.zeros(1)
    before = dispatch.pick("bias_act", "auto", x)
    with reference_ops():
        assert dispatch.pick("bias_act", "auto", x) is None
    assert dispatch.pick("bias_act", "auto", x) is before


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_cli_rejects_bad_data_folder(tmp_path, capsys, make):
    folder = tmp_path / "data"
    if make == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no images here")
    code = main(["train-prior", str(folder), str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "data folder" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def _equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)


@pytest.mark.parametrize("mode", ["ada", "diffaug"])
def test_resumed_run_with_augmentation_continues_the_same_run(faces_dir, tmp_path, mode):
    # A fast ADA (p moves 0.08 per 4 minibatches) with a low target, so p is non-zero by the
    # break and the checkpoint must carry it, and the break falls inside an ADA interval.
    cfg = dict(TINY, augment=mode, ada_kimg=0.2, ada_target=0.0, r1_interval=2)
    quiet = dict(progress=False, log=lambda m: None)
    straight = train(faces_dir, tmp_path / "a", TrainConfig(kimg=0.040, **cfg), **quiet)
    train(faces_dir, tmp_path / "b", TrainConfig(kimg=0.012, **cfg), **quiet)
    state = load_checkpoint(tmp_path / "b")
    assert state["ada"]["batches"] == 3  # mid-interval
    resumed = train(faces_dir, tmp_path / "b", TrainConfig(kimg=0.040, **cfg), resume="auto", **quiet)
    for key in ("loss_G", "loss_D", "r1", "p", "r_t", "cur_nimg"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5), key
    if mode == "ada":
        assert straight["p"] > 0
    else:
        assert straight["p"] == 1.0
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for key in ("G", "D", "G_ema"):
        _equal_states(a[key], b[key])
    assert torch.equal(a["sampler"]["order"], b["sampler"]["order"]) and a["sampler"]["pos"] == b["sampler"]["pos"]
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [e["augment"] for e in log] == [mode, mode] and log[-1]["p"] == round(straight["p"], 5)


@pytest.mark.parametrize("mode", ["none", "diffaug", "ada"])
def test_tiny_cpu_run_in_each_mode(faces_dir, tmp_path, mode):
    out = train(faces_dir, tmp_path / mode, TrainConfig(kimg=0.016, augment=mode, ada_kimg=1, **TINY),
                progress=False, log=lambda m: None)
    assert out["cur_nimg"] == 16 and all(math.isfinite(out[k]) for k in ("loss_G", "loss_D", "r1", "r_t"))
    assert -1 <= out["r_t"] <= 1
    line = json.loads((tmp_path / mode / "log.jsonl").read_text().splitlines()[-1])
    assert line["augment"] == mode and line["r_t"] == round(out["r_t"], 4)


def test_log_lines_make_the_training_curves(faces_dir, tmp_path, bench_script):
    train(faces_dir, tmp_path / "run", TrainConfig(kimg=0.012, log_minutes=0, **TINY), progress=False,
          log=lambda m: None)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # A line after every step (log_minutes 0) and one with the final checkpoint.
    assert [e["kimg"] for e in log] == [0.004, 0.008, 0.012, 0.012]
    assert all(e["loss_G"] is not None and e["img_per_s"] > 0 for e in log)
    plot = bench_script("plot_prior_curves")
    import sys

    argv = sys.argv
    sys.argv = ["plot", str(tmp_path / "run" / "log.jsonl"), str(tmp_path / "curves.png")]
    try:
        assert plot.main() == 0
    finally:
        sys.argv = argv
    assert (tmp_path / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_the_run_which_resumes_as_if_never_stopped(faces_dir, tmp_path, monkeypatch, sig):
    """A signal mid-run finishes the step, writes checkpoint, samples and prior, then interrupts;
    resuming gives the uninterrupted run's state (no work since the last periodic checkpoint lost)."""
    from rlse_fast.train import prior
    from rlse_fast.train.stop import Interrupted

    cfg = dict(TINY, r1_interval=2)
    quiet = dict(progress=False, log=lambda m: None)
    straight = train(faces_dir, tmp_path / "a", TrainConfig(kimg=0.020, **cfg), **quiet)

    steps = {"n": 0}
    real_step = prior.generator_step

    def step_then_signal(*args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 3:  # arrives inside the third step, before D's half of it
            os.kill(os.getpid(), sig)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(prior, "generator_step", step_then_signal)
    previous = signal.getsignal(sig)
    with pytest.raises(Interrupted) as caught:
        train(faces_dir, tmp_path / "b", TrainConfig(kimg=0.020, **cfg), **quiet)
    assert caught.value.exit_code == 128 + sig and "0.012 kimg" in str(caught.value)
    assert signal.getsignal(sig) is previous  # the handlers are the caller's again
    assert steps["n"] == 3  # the step in progress finished, no further one began
    state = load_checkpoint(tmp_path / "b")
    assert state["cur_nimg"] == 12 and state["batch_idx"] == 3  # the checkpoint interval is 60 minutes
    assert (tmp_path / "b" / "prior-16.safetensors").is_file() and (tmp_path / "b" / "samples" / "latest.png").is_file()

    monkeypatch.setattr(prior, "generator_step", real_step)
    resumed = train(faces_dir, tmp_path / "b", TrainConfig(kimg=0.020, **cfg), resume="auto", **quiet)
    for key in ("loss_G", "loss_D", "r1", "cur_nimg"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5), key
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for key in ("G", "D", "G_ema"):
        _equal_states(a[key], b[key])


def test_cli_reports_a_saved_interruption(faces_dir, tmp_path, monkeypatch, capsys):
    from rlse_fast.train import prior

    real_step = prior.generator_step

    def step_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(prior, "generator_step", step_then_signal)
    run = tmp_path / "run"
    code = main(["train-prior", str(faces_dir), str(run), "--resolution", "16", "--z-dim", "32", "--mapping-layers",
                 "1", "--channel-base", "256", "--channel-max", "32", "--batch", "4", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 130 and len(err.splitlines()) == 1
    assert "interrupted: SIGINT at 0.004 kimg" in err and "--resume" in err and "Traceback" not in err
    assert load_checkpoint(run)["cur_nimg"] == 4
