"""Issue 28's fixes that live in the core loop: each test fails without its fix."""
import pytest
import torch

import gan_utils as gu
from gan_utils.lessons import dirac


def tiny(device="cpu"):
    gu.seed_everything(0)
    G = gu.MLPGenerator(2, out_shape=(1,), widths=(8,), norm="batch", out=None).to(device)
    D = gu.MLPDiscriminator(in_dim=1, widths=(8,)).to(device)
    data = gu.ToyBatches(lambda n: gu.sample_gaussian_1d(n, device=device), 16, 4)
    kw = dict(noise=gu.make_noise(2, device=device), opt_g=gu.make_optimizer(G), opt_d=gu.make_optimizer(D),
              progress=False)
    return G, D, data, kw


def test_generate_restores_train_mode_when_G_raises():
    """Item 3: gu.generate on a G that raises (labels forgotten, wrong shape) left G in eval mode."""
    G, *_ = tiny()
    with pytest.raises(ValueError):
        gu.generate(G, torch.randn(4, 3))            # wrong noise size
    assert G.training


def test_train_gan_trains_in_train_mode_after_an_error_left_eval_mode():
    """Item 3: a model left in eval mode by an earlier error trained BatchNorm in eval mode."""
    G, D, data, kw = tiny()
    G.eval(), D.eval()
    modes = []
    callback = lambda step, G, D, h: modes.append((G.training, D.training))   # noqa: E731
    gu.train_gan(G, D, data, epochs=1, callback=callback, **kw)
    assert modes and all(m == (True, True) for m in modes)


def test_train_gan_works_with_grad_mode_left_off():
    """Item 12: after a Ctrl-C that left grad mode disabled, the next backward failed."""
    G, D, data, kw = tiny()
    torch.set_grad_enabled(False)
    try:
        history = gu.train_gan(G, D, data, epochs=1, **kw)
    finally:
        torch.set_grad_enabled(True)
    assert len(history["step"]) == 4


def test_train_run_refuses_a_watcher_with_the_wrong_epoch_length(tmp_path):
    """Item 6: Watcher(steps_per_epoch=10) on 4 batches an epoch mislabelled epochs silently."""
    G, D, data, kw = tiny()
    watcher = gu.Watcher(torch.randn(4, 2), lambda G: {"frechet": 0.0}, steps_per_epoch=10)
    with pytest.raises(ValueError, match="steps per epoch"):
        gu.train_run(G, D, data, name="t", settings={"x": 1}, watcher=watcher, epochs=1, folder=tmp_path, **kw)


def test_dirac_refuses_an_unknown_loss_name():
    """Item 6: dirac_trajectory({'loss': 'Saturating'}) silently ran the non-saturating GAN."""
    with pytest.raises(ValueError, match="'saturating', 'nonsaturating' or 'wgan'"):
        dirac.dirac_trajectory({"loss": "Saturating"}, steps=2)


def test_feature_matching_passes_the_labels_to_a_conditional_D():
    """Item 13: feature matching with a concat conditional D said 'pass the labels too' though they were passed."""
    gu.seed_everything(0)
    G = gu.DCGANGenerator(8, width=4, n_classes=10, pixels="01")
    D = gu.DCGANDiscriminator(width=4, n_classes=10, conditioning="concat", norm=None)
    data = gu.TensorBatches(torch.rand(32, 1, 28, 28), 16, labels=torch.arange(32) % 10)
    history = gu.train_gan(G, D, data, noise=gu.make_noise(8), epochs=1, opt_g=gu.make_optimizer(G),
                           opt_d=gu.make_optimizer(D), loss="feature_matching", progress=False)
    assert len(history["step"]) == 2


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_the_classifier_script_refuses_to_save_an_untrained_network(load_script, tmp_path, capsys, epochs):
    """Issue 28, Low: `--epochs 0` saved an untrained network as the evaluation classifier."""
    script = load_script("scripts/train_classifier.py")
    with pytest.raises(SystemExit) as err:
        script.main(["--epochs", epochs, "--out", str(tmp_path / "cnn.pt")])
    assert err.value.code != 0 and "--epochs must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "cnn.pt").exists()
