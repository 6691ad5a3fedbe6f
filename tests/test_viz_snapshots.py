"""gan_utils.viz helpers and gan_utils.lessons.toy, used by notebooks 01 and 02: SnapshotCollector, plot_metrics,
plot_generator_losses, plot_1d, gan_utils.notebook's interact_manual and show_source; toy players, training, frames and segment distances."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import gan_utils as gu  # noqa: E402


def test_snapshot_collector_records_frames_through_train_gan():
    gu.seed_everything(0)
    G = gu.MLPGenerator(2, out_shape=(1,), widths=(8,), norm=None, out=None)
    D = gu.MLPDiscriminator(in_dim=1, widths=(8,))
    snaps = gu.SnapshotCollector(torch.randn(50, 2), lambda f: {"w1": gu.w1_to_gaussian(f, 4.0, 1.25)}, every=5)
    data = gu.ToyBatches(lambda n: gu.sample_gaussian_1d(n), 16, 20)
    gu.train_gan(G, D, data, noise=gu.make_noise(2), epochs=1, opt_g=gu.make_optimizer(G),
                 opt_d=gu.make_optimizer(D), callback=snaps, progress=False)
    assert snaps.values("step") == [0, 5, 10, 15, 20]
    assert snaps[0]["fake"].shape == (50, 1) and all(isinstance(v, float) for v in snaps.values("w1"))
    frozen = snaps[0]["D"]  # a copy: later training did not change it
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not torch.equal(frozen.head.weight, D.head.weight)
    assert [f["step"] for f in snaps.pick(3)] == [0, 10, 20]
    ax = gu.plot_metrics(snaps, ["w1"], targets={"w1": 0.1})
    assert len(ax.lines) == 2
    plt.close("all")


def test_plot_generator_losses_gradients_are_d_and_one_minus_d():
    axes = gu.plot_generator_losses()
    sat, nonsat = axes[1].lines[:2]
    d = sat.get_xdata()
    assert np.allclose(sat.get_ydata(), d, atol=1e-6)          # |d/dl log(1 - sigmoid(l))| = D
    assert np.allclose(nonsat.get_ydata(), 1 - d, atol=1e-6)   # |d/dl -log sigmoid(l)| = 1 - D
    plt.close("all")


def test_segment_distances_stop_at_the_ends():
    from gan_utils.lessons import toy
    # the segment y = x/2 + 1 for x in [-2, 2] runs from (-2, 0) to (2, 2)
    points = torch.tensor([[0.0, 1.0],     # on the segment
                           [4.0, 3.0],     # on the line, beyond the right end: sqrt(5) from (2, 2)
                           [-3.0, -0.5],   # on the line, beyond the left end: sqrt(1.25) from (-2, 0)
                           [0.0, 0.0]])    # beside the middle: the distance to the line, 1 / sqrt(1.25)
    d = gu.metrics.segment_distances(points, 0.5, 1.0, (-2.0, 2.0))
    assert np.allclose(d, [0.0, 5 ** 0.5, 1.25 ** 0.5, 1 / 1.25 ** 0.5])
    assert np.allclose(gu.metrics.line_distances(points, 0.5, 1.0)[:3], 0.0)   # the infinite line misses the difference
    assert toy.segment_metrics(points, 0.5, 1.0, (-2.0, 2.0), tol=0.1)["near"] == 0.25
    m = toy.segment_metrics(gu.sample_line_2d(2000), 0.5, 1.0, (-2.0, 2.0))
    assert m["near"] == 1.0 and m["coverage"] == 1.0 and m["dist"] < 1e-6


def test_toy_players_train_and_frames():
    from gan_utils.lessons import toy
    G, D = toy.make_players(data_dim=2, noise_dim=3, hidden=8, seed=1)
    G2, _ = toy.make_players(data_dim=2, noise_dim=3, hidden=8, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), G2.parameters()))   # same seed, same start
    metrics = lambda fake: toy.segment_metrics(fake, 0.5, 1.0, (-2.0, 2.0))
    runs = [toy.train_toy(*toy.make_players(2, 3, 8, seed=1), lambda n: gu.sample_line_2d(n), steps=20, batch=16,
                          z_eval=torch.randn(30, 3), metrics=metrics, k=2, snap_every=5, progress=False)
            for _ in range(2)]
    (history, snaps), (history2, _) = runs
    assert snaps.values("step") == [0, 5, 10, 15, 20] and history["step"][-1] == 20
    assert history["loss_d"] == history2["loss_d"]                                   # seeded: the same run
    assert set(snaps[0]) >= {"fake", "D", "dist", "near", "coverage"}
    assert toy.frame_at(snaps, 12)["step"] == 10 and toy.frame_at(snaps.frames, 99)["step"] == 20
    hist_sgd, _ = toy.train_toy(G, D, lambda n: gu.sample_line_2d(n), steps=5, batch=16, z_eval=torch.randn(4, 3),
                                loss="saturating", optimizer="sgd", momentum=0.5, lr_g=0.01, progress=False)
    assert len(hist_sgd["step"]) == 5


def test_hand_written_loop_logs_like_train_gan():
    from gan_utils.lessons import toy
    G, D = toy.make_players(data_dim=1, noise_dim=2, hidden=8)
    opt_g, opt_d, loss = gu.make_optimizer(G), gu.make_optimizer(D), gu.get_loss("nonsaturating")
    history, noise = gu.new_history(), gu.make_noise(2)
    for step in range(1, 4):
        real = gu.sample_gaussian_1d(16)
        loss_d, real_out, fake_out = gu.d_step(G, D, opt_d, real, noise, loss)
        loss_g = gu.g_step(G, D, opt_g, real, noise, loss)
        toy.log_step(history, step, loss_d, loss_g, real_out, fake_out)
    assert history["step"] == [1, 2, 3] and all(0 < p < 1 for p in history["d_real"] + history["d_fake"])
    assert "profile" in gu.run_summary(0.0, "cpu")
    assert "def d_step" in gu.notebook.show_source(gu.d_step).data


def test_1d_plot_marks_a_clipped_spike_and_labels_its_axes():
    x = torch.linspace(-1, 9, 200)
    ax = gu.plot_1d(None, x, gu.gaussian_pdf(x), torch.zeros(500, 1) + 0.01)   # all samples in one bin
    assert ax.get_ylim()[1] == pytest.approx(1.05) and ax.get_ylabel()
    assert any("cut" in t.get_text() for t in ax.texts)
    ax = gu.plot_metrics([{"step": 0, "w1": 1.0}, {"step": 1, "w1": 0.1}], ["w1"], targets={"w1": 0.2},
                         target_labels={"w1": "goal"}, ylabel="W1")
    assert "goal" in [l.get_label() for l in ax.lines] and ax.get_ylabel() == "W1"
    plt.close("all")


def test_interact_manual_without_ipywidgets_prints_instead_of_failing(monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "ipywidgets", None)    # import ipywidgets now raises ImportError
    assert gu.notebook.interact_manual(lambda k=1: k, k=(1, 5)) is None
    assert "ipywidgets" in capsys.readouterr().out
