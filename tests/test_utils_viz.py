"""gan_utils.utils (seeding, device, profile) and gan_utils.viz (plots render and show data)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import gan_utils as gu  # noqa: E402


def test_seed_everything_repeats_all_generators():
    import random
    gu.seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    gu.seed_everything(7)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(ValueError):
        gu.seed_everything(-1)


def test_profile_and_device(monkeypatch, capsys):
    monkeypatch.setenv("GAN_PROFILE", "ci")
    assert gu.get_profile() == "ci" and gu.by_profile(real=250, ci=2) == 2
    monkeypatch.delenv("GAN_PROFILE")
    assert gu.get_profile() == "real" and gu.by_profile(real=250, ci=2) == 250
    monkeypatch.setenv("GAN_PROFILE", "fast")
    with pytest.raises(ValueError, match="use one of"):
        gu.get_profile()
    assert gu.get_device("cpu").type == "cpu" and "device: cpu" in capsys.readouterr().out


def fake_history(n=50):
    steps = list(range(1, n + 1))
    return {"step": steps, "epoch": [0] * n, "loss_d": [1.0] * n, "loss_g": [0.7] * n,
            "d_real": [0.6] * n, "d_fake": [0.4] * n}


def test_curves_and_image_grid_draw_the_data():
    fig, axes = plt.subplots(1, 3)
    gu.plot_losses(fake_history(), axes[0], smooth=5)
    assert len(axes[0].lines) == 2 and len(axes[0].lines[0].get_xdata()) == 46
    gu.plot_d_outputs(fake_history(), axes[1])
    assert axes[1].lines[0].get_ydata()[0] == pytest.approx(0.6)
    gu.show_images(torch.rand(16, 1, 28, 28) * 2 - 1, nrow=4, ax=axes[2])
    assert axes[2].images[0].get_array().shape == (4 * 30 + 2, 4 * 30 + 2, 3)
    plt.close(fig)


def test_1d_and_2d_plots_and_animation(tmp_path):
    D1 = gu.MLPDiscriminator(in_dim=1, widths=(8,))
    x = torch.linspace(0, 8, 200)
    ax = gu.plot_1d(None, x, gu.gaussian_pdf(x), torch.randn(500, 1) + 4, D=D1, optimal_d=True)
    assert [l.get_label() for l in ax.lines] == ["data p_data(x)", "D(x)", "D*(x)"]
    D2 = gu.MLPDiscriminator(in_dim=2, widths=(8,))
    ax = gu.plot_2d(None, torch.randn(100, 2), torch.randn(100, 2), D=D2, res=20)
    assert ax.images[0].get_array().shape == (20, 20) and len(ax.collections) == 2
    plt.close("all")
    anim = gu.animate([1, 2, 3], lambda ax, f: ax.plot([0, f], [0, f]))
    html = anim.to_jshtml()
    assert "<img" in html or "frames" in html
    anim.save(tmp_path / "a.gif", writer="pillow", fps=5)
    assert (tmp_path / "a.gif").stat().st_size > 0
