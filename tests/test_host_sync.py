"""Issue 27: no training step reads a value back to the host, checked on PyTorch's `meta` device (tensors with a
shape and no data: .item(), bool(), .cpu(), .tolist() all raise there), and the checks moved out of the steps
(labels once per data set, EMA counting on the host) with issue 28's clear errors for bad arguments."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import gan_utils as gu
from gan_utils.lessons import seeds
from gan_utils.losses import hinge_loss, matching_aware_loss, r1_loss, wgan_gp_loss, wgan_loss
from gan_utils.steps import d_step, eager_steps, g_step
from gan_utils.train import with_labels

META = torch.device("meta")
LOSSES = {"saturating": "saturating", "nonsaturating": "nonsaturating", "feature_matching": "feature_matching",
          "wgan (clip)": wgan_loss(clip=0.01), "wgan_gp": wgan_gp_loss(lam=10.0), "r1": r1_loss(gamma=10.0),
          "hinge": hinge_loss()}


def _loss(loss):
    return gu.get_loss(loss) if isinstance(loss, str) else loss


def _one_step(G, D, real, noise_dim, loss, opt="adam", batch=None):
    """One D step and one G step of `steps.eager_steps` on the meta device (batch: what train_gan iterates)."""
    G, D = G.to(META), D.to(META)
    opt_g, opt_d = gu.make_optimizer(G, opt), gu.make_optimizer(D, opt)
    shape = real.shape[:-1] if getattr(G, "batch_dims", 1) == 2 else real.shape[:1]
    noise = lambda n: torch.randn(*shape, noise_dim, device=META)   # noqa: E731 (batched seeds: (S, N, dim))
    real, G_b, D_b = with_labels(batch, G, D) if batch is not None else (real, G, D)
    d_fn, g_fn = eager_steps(G, D, opt_g, opt_d, noise, _loss(loss))
    loss_d, real_out, fake_out = d_fn(real, G_b, D_b)
    loss_g = g_fn(real, G_b, D_b)
    assert {t.device.type for t in (loss_d, loss_g, real_out, fake_out)} == {"meta"}
    return opt_g, opt_d


@pytest.mark.parametrize("name", LOSSES)
def test_mlp_steps_read_nothing_back_on_meta(name):
    gu.seed_everything(0)
    G, D = gu.MLPGenerator(noise_dim=8, widths=(16, 32)), gu.MLPDiscriminator(widths=(32, 16))
    _one_step(G, D, torch.rand(8, 1, 28, 28, device=META), 8, LOSSES[name])
    _one_step(gu.MLPGenerator(noise_dim=8, widths=(16,)), gu.MaxoutDiscriminator(units=8, pieces=2),
              torch.rand(8, 784, device=META).view(8, 1, 28, 28), 8, LOSSES[name], opt="sgd")


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("name", ["nonsaturating", "feature_matching", "hinge", "r1"])
def test_dcgan_steps_read_nothing_back_on_meta(upsample, name):
    G = gu.DCGANGenerator(noise_dim=8, width=4, upsample=upsample, pixels="01")
    D = gu.DCGANDiscriminator(width=4, minibatch=4, norm="layer" if name == "r1" else "batch")
    _one_step(G, D, torch.rand(8, 1, 28, 28, device=META), 8, LOSSES[name])


@pytest.mark.parametrize("conditioning", ["concat", "projection"])
@pytest.mark.parametrize("loss", ["matching_aware", "nonsaturating", "feature_matching"])
def test_conditional_steps_read_nothing_back_on_meta(conditioning, loss):
    """Labels bound to G and D as train_gan binds an (images, labels) batch; the models check only dtype and shape."""
    G = gu.DCGANGenerator(noise_dim=8, width=4, n_classes=10, pixels="01")
    D = gu.DCGANDiscriminator(width=4, n_classes=10, conditioning=conditioning, minibatch=4)
    x, y = torch.rand(8, 1, 28, 28, device=META), torch.randint(0, 10, (8,), device=META)
    _one_step(G, D, x, 8, matching_aware_loss() if loss == "matching_aware" else loss, batch=(x, y))


@pytest.mark.parametrize("trick", list(seeds.TOY_TRICKS) + ["ema and lr_decay"])
def test_batched_seed_steps_read_nothing_back_on_meta(trick):
    """Each trick of notebook 04, S = 2 seeds: the batched step (per_seed loss, BatchedMLP) and the per-G-step
    EMA / lr decay; minibatch discrimination trains each seed alone (plain MLPs)."""
    settings = {"ema": 0.999, "lr_decay": True} if trick == "ema and lr_decay" else seeds.TOY_TRICKS[trick]
    variant = {key: settings[key] for key in ("pack", "spectral", "minibatch") if key in settings}
    models = [seeds.toy_models(s, "cpu", **variant) for s in (0, 1)]
    loss = seeds.per_seed(_loss(settings.get("loss", "nonsaturating")), 2)
    if settings.get("minibatch"):
        _one_step(*models[0], torch.randn(8, 2, device=META), 2, loss)
        return
    G = seeds.BatchedMLP([m[0] for m in models], nn.ReLU()).to(META)
    D = seeds.BatchedMLP([m[1] for m in models], nn.LeakyReLU(0.2)).to(META)
    opt_g, opt_d = seeds.trick_optimizers(G, D, settings)
    G_out, every_step = seeds._run_settings(G, (opt_g, opt_d), 10, settings)
    noise = lambda n: torch.randn(n, 8, 2, device=META)   # noqa: E731 (n = S: train_seeds draws its own 8)
    real = torch.randn(2, 8, 2, device=META)
    d_step(G, D, opt_d, real, noise, loss)
    g_step(G, D, opt_g, real, noise, loss)
    every_step(), every_step()
    assert next(G_out.parameters()).device == META


def test_a_read_back_on_meta_raises():
    """What the tests above rely on: a step that reads a value back fails on meta."""
    x = torch.ones(3, device=META)
    for read in (lambda: x.sum().item(), lambda: bool(x.max() > 0), lambda: x.cpu(), lambda: x.tolist()):
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()


def test_ema_is_averaged_models_numbers_bitwise():
    """seeds.EMA (a host counter) gives AveragedModel(get_ema_multi_avg_fn)'s numbers exactly."""
    G = seeds.BatchedMLP([seeds.toy_models(s)[0] for s in (0, 1)], nn.ReLU())
    ours, torchs = seeds.EMA(G, 0.9), AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for step in range(4):
        with torch.no_grad():
            for p in G.parameters():
                p.add_(torch.randn_like(p))
        ours.update_parameters(G), torchs.update_parameters(G)
    assert ours.updates == 4 and all(torch.equal(a, b) for a, b in
                                     zip(ours.module.state_dict().values(), torchs.module.state_dict().values()))


def test_labels_are_checked_once_per_data_set():
    """TensorBatches and generate check the labels' values (one read-back, not one per forward); int8 and bool
    labels, which the models refuse, are refused up front; the models keep the no-sync checks."""
    x = torch.rand(20, 1, 28, 28)
    for labels, message in ((torch.arange(20).to(torch.int8), "int8"), (torch.ones(20, dtype=torch.bool), "bool"),
                            (torch.arange(20) % 11, r"in \[0, 10\)"), (torch.arange(20) - 1, r"-1 to 18")):
        with pytest.raises(ValueError, match=message):
            gu.TensorBatches(x, 4, labels=labels, n_classes=10)
    batches = gu.TensorBatches(x, 4, labels=torch.arange(20) % 10, n_classes=10)
    assert len(batches) == 5
    G = gu.DCGANGenerator(noise_dim=8, width=4, n_classes=10)
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        gu.generate(G, torch.randn(2, 8), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="int64, int32 or uint8"):
        gu.generate(G, torch.randn(2, 8), torch.tensor([0, 1], dtype=torch.int8))
    G.to(META)(torch.randn(2, 8, device=META), torch.tensor([0, 10], device=META))   # no value check off the CPU


def test_bad_model_arguments_get_clear_errors():
    """Issue 28 (Low): n_classes=-1, labels given to an MLP model, float64 noise or data (refused, consistently:
    every model wants the dtype of its weights)."""
    for make in (gu.DCGANGenerator, gu.DCGANDiscriminator):
        for bad in (-1, 2.5, True):
            with pytest.raises(ValueError, match="n_classes must be an int >= 0"):
                make(n_classes=bad)
    G, D, M = gu.MLPGenerator(noise_dim=8), gu.MLPDiscriminator(), gu.MaxoutDiscriminator()
    y = torch.zeros(4, dtype=torch.long)
    for model, inp in ((G, torch.randn(4, 8)), (D, torch.rand(4, 784)), (M, torch.rand(4, 784))):
        with pytest.raises(ValueError, match="takes no labels"):
            model(inp, y)
        with pytest.raises(ValueError, match="float32 weights but got a torch.float64 batch"):
            model(inp.double())
    with pytest.raises(ValueError, match="float64"):
        gu.DCGANGenerator(noise_dim=8, width=4)(torch.randn(2, 8, dtype=torch.float64))
    assert gu.MLPGenerator(noise_dim=8).double()(torch.randn(4, 8, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("kwargs,message", [
    ({"trick": "gan"}, "unknown trick 'gan'; choose one of"), ({"seeds": []}, r"len\(seeds\) must be an int >= 1"),
    ({"steps": 0}, "steps must be an int >= 1"), ({"record_every": 0}, "record_every must be an int >= 1"),
    ({"centers": torch.zeros(4, 3)}, r"centers must be a \(modes, 2\) tensor.*\(4, 3\)"),
    ({"centers": torch.zeros(2, 4, 2)}, r"\(modes, 2\)"),
    ({"trick": {"lr_decay": "yes"}}, "'lr_decay' must be True or False"),
    ({"trick": {"ema": 1.5}}, "'ema' a decay in")])
def test_train_toy_seeds_bad_arguments_get_clear_errors(kwargs, message):
    args = {"seeds": [0], "centers": gu.ring_centers(4), "std": 0.05, "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        seeds.train_toy_seeds(**args)


def test_gpu_probe_dry_run():
    """scripts/gpu_probe.py --dry-run: every probe on the CPU at toy sizes, in seconds (CI's smoke test of the
    GPU check's probe; the real run needs a GPU)."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "scripts/gpu_probe.py", "--dry-run"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "probe: all passed" in out.stdout
