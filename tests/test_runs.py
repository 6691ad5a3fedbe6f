"""Runs keyed to their settings (issue 10): a rerun with the same settings resumes or reloads,
other settings start a new file, and an interrupted run resumes to the same result."""
import pytest
import torch

import gan_utils as gu
from gan_utils.lessons import dcgan


def run(folder, device, epochs=3, lr=1e-3, stop_at=None):
    gu.seed_everything(0)
    G = gu.MLPGenerator(noise_dim=4, widths=(8,)).to(device)
    D = gu.MLPDiscriminator(widths=(8,)).to(device)
    opt_g, opt_d = gu.make_optimizer(G, lr=lr), gu.make_optimizer(D, lr=lr)
    data = gu.TensorBatches(torch.rand(64, 1, 28, 28, device=device), 16)      # 4 steps per epoch
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)).to(device)

    def score(G):
        if stop_at is not None and len(watcher.scores) == stop_at + 1:        # epochs 0 .. stop_at - 1 scored
            raise KeyboardInterrupt
        return {"frechet": float(gu.generate(G, z).std())}

    watcher = gu.Watcher(z, score, len(data))
    settings = {"lr": lr, "epochs": epochs}
    history = gu.train_run(G, D, data, name="toy", settings=settings, watcher=watcher, epochs=epochs, folder=folder,
                           noise=gu.make_noise(4, device=device), opt_g=opt_g, opt_d=opt_d, progress=False)
    return G, D, history, watcher


def test_settings_key_is_stable_and_tells_settings_apart():
    assert gu.runs.settings_key({"lr": 2e-4, "betas": (0.5, 0.999)}) == gu.runs.settings_key({"betas": [0.5, 0.999], "lr": 2e-4})
    assert gu.runs.settings_key({"lr": 2e-4}) != gu.runs.settings_key({"lr": 1e-5})
    with pytest.raises(TypeError, match="settings must be a dict"):
        gu.runs.settings_key([("lr", 2e-4)])


def test_a_finished_run_is_reloaded_and_other_settings_start_afresh(tmp_path, device, capsys):
    G, D, history, watcher = run(tmp_path, device)
    assert sorted(watcher.snapshots) == [0, 1, 2, 3] and sorted(watcher.scores) == [0, 1, 2, 3]
    assert watcher.best["epoch"] in (1, 2, 3) and watcher.seconds > 0
    G2, _, history2, watcher2 = run(tmp_path, device)
    assert "3 of 3 epochs already trained" in capsys.readouterr().out
    assert history2 == history and watcher2.best["epoch"] == watcher.best["epoch"]
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))
    assert all(torch.equal(watcher.snapshots[e], watcher2.snapshots[e]) for e in watcher.snapshots)
    run(tmp_path, device, lr=2e-3)
    assert len(list(tmp_path.glob("toy-*.watch.pt"))) == 2 and len(list(tmp_path.glob("toy-*.json"))) == 2
    G_best, _ = watcher2.best_models(G2, _)
    for name, value in G_best.state_dict().items():
        assert torch.equal(value.cpu(), watcher.best["G"][name].cpu())


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, device):
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        G, _, history, watcher = run(tmp_path / "a", device)
        with pytest.raises(gu.TrainingInterrupted):             # Ctrl-C while scoring epoch 2
            run(tmp_path / "b", device, stop_at=2)
        G2, _, history2, watcher2 = run(tmp_path / "b", device)
    finally:
        torch.use_deterministic_algorithms(False)
    assert history2 == history
    assert sorted(watcher2.snapshots) == [0, 1, 2, 3]
    assert all(torch.equal(watcher.snapshots[e], watcher2.snapshots[e]) for e in watcher.snapshots)
    assert watcher2.best["epoch"] == watcher.best["epoch"]
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))


def test_a_fast_run_is_kept_apart_from_an_eager_one(tmp_path, capsys):
    gu.seed_everything(0)
    G = gu.MLPGenerator(noise_dim=4, widths=(8,))
    D = gu.MLPDiscriminator(widths=(8,))
    z = torch.randn(8, 4)
    for fast in (False, True):                  # on a CPU fast=True falls back to eager, with a message
        watcher = gu.Watcher(z, lambda G: {"frechet": 0.0}, 4)
        gu.train_run(G, D, gu.TensorBatches(torch.rand(64, 1, 28, 28), 16), name="toy", settings={"lr": 1e-3},
                     watcher=watcher, epochs=1, folder=tmp_path, noise=gu.make_noise(4), opt_g=gu.make_optimizer(G),
                     opt_d=gu.make_optimizer(D), progress=False, fast=fast)
    assert len(list(tmp_path.glob("toy-*.pt"))) - len(list(tmp_path.glob("toy-*.watch.pt"))) == 2
    assert "a new run" in capsys.readouterr().out


@pytest.mark.parametrize("conditional", [False, True])
def test_dcgan_run_scores_every_epoch_and_reloads(tmp_path, conditional, device):
    """Notebook 05's runs: scored every epoch (with the checkerboard and, conditional, the accuracy),
    one row per digit in the conditional snapshots, and reloaded (not retrained) with the same settings."""
    g = torch.Generator().manual_seed(0)
    split = {"protocol": "synthetic", "x_train": torch.rand(256, 1, 28, 28, generator=g).to(device),
             "y_train": torch.randint(0, 10, (256,), generator=g).to(device),
             "x_valid": torch.rand(64, 1, 28, 28, generator=g).to(device)}
    classifier = gu.classifier.MNISTClassifier().to(device).eval()
    G, D, watch, history = dcgan.dcgan_run(split, epochs=2, width=4, conditional=conditional, classifier=classifier,
                                             device=device, folder=tmp_path, progress=False)
    assert sorted(watch.scores) == [0, 1, 2] and history["step"][-1] == 4
    keys = {"modes", "kl", "frechet", "checker_db", "nyquist_db"} | ({"accuracy"} if conditional else set())
    assert set(watch.scores[2]) == keys
    assert watch.snapshots[2].shape == (100, 1, 28, 28) and watch.snapshots[2].dtype == torch.uint8
    assert (G.embed is not None) == conditional
    again = dcgan.dcgan_run(split, epochs=2, width=4, conditional=conditional, classifier=classifier,
                              device=device, folder=tmp_path, progress=False)
    assert again[3]["step"] == history["step"]
    assert all(torch.equal(a, b) for a, b in zip(again[0].state_dict().values(), G.state_dict().values()))
