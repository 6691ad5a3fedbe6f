"""gan_utils.viz helpers used by notebooks 01 and 02: SnapshotCollector, plot_metrics, plot_generator_losses."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import gan_utils as gu  # noqa: E402


def test_snapshot_collector_records_frames_through_train_gan():
    gu.seed_everything(0)
    G = gu.MLPGenerator(2, out_shape=(1,), widths=(8,), norm=None, out=None)
    D = gu.MLPDiscriminator(in_dim=1, widths=(8,))
    snaps = gu.SnapshotCollector(torch.randn(50, 2), lambda f: {"w1": gu.w1_to_gaussian(f, 4.0, 1.25)})
    data = gu.ToyBatches(lambda n: gu.sample_gaussian_1d(n), 16, 20)
    gu.train_gan(G, D, data, noise=gu.make_noise(2), epochs=1, opt_g=gu.make_optimizer(G),
                 opt_d=gu.make_optimizer(D), callback=snaps, callback_every=5, progress=False)
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
