"""Notebook 05's foundations: the checkerboard score, the DCGAN variants, transposed convolution."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import gan_utils as gu

ROOT = Path(__file__).resolve().parent.parent


def smooth_noise(n, sigma, device, seed=0):
    """White noise blurred by a Gaussian of std sigma pixels (circular, so no edges): (n, 1, 28, 28)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.arange(-4, 5.0)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    x = torch.randn(n, 1, 28, 28, generator=g).to(device)
    return F.conv2d(F.pad(x, (4, 4, 4, 4), mode="circular"), k.view(1, 1, 9, 9).to(device))


def test_checkerboard_score_finds_planted_periodic_patterns(device):
    x = smooth_noise(64, 0.7, device)
    i = torch.arange(28, device=device)
    period2 = (-1.0) ** (i[:, None] + i[None, :])                  # +-1 checkerboard: the Nyquist bin
    tile = torch.randn(4, 4, generator=torch.Generator().manual_seed(1)).to(device).repeat(7, 7)   # period 4
    plain = gu.checkerboard_score(x, 4)
    two = gu.checkerboard_score(x + 0.3 * period2, 4)
    four = gu.checkerboard_score(x + 0.3 * tile, 4)
    assert two["nyquist_db"] > 10 and two["bins_db"][(14, 14)] == two["nyquist_db"]
    assert two["mean_db"] > plain["mean_db"] + 1
    assert four["mean_db"] > 10 and min(four["bins_db"].values()) > 3    # every grid bin has a peak
    assert len(four["bins_db"]) == 15 and (0, 0) not in four["bins_db"]
    assert set(four["bins_db"]) == {(u, v) for u in (0, 7, 14, 21) for v in (0, 7, 14, 21)} - {(0, 0)}


@pytest.mark.parametrize("sigma", [0.0, 0.7, 1.0])
def test_checkerboard_score_of_smooth_noise_is_near_zero(sigma, device):
    x = smooth_noise(256, sigma, device) if sigma else torch.randn(256, 1, 28, 28, device=device)
    score = gu.checkerboard_score(x, 4)
    assert abs(score["mean_db"]) < 1.5 and abs(score["nyquist_db"]) < 3


def test_checkerboard_score_ignores_brightness_and_contrast(device):
    x = smooth_noise(32, 0.7, device, seed=2)
    base = gu.checkerboard_score(x, 4)
    for y in (x + 5.0, 3 * x, 0.5 * x - 2):
        other = gu.checkerboard_score(y, 4)
        assert other["mean_db"] == pytest.approx(base["mean_db"], abs=1e-4)   # float32 rounding of y
        assert other["nyquist_db"] == pytest.approx(base["nyquist_db"], abs=1e-4)


def test_checkerboard_score_bad_input_says_what_to_pass():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gu.checkerboard_score(torch.rand(5, 28, 28), 4)
    for stride in (3, 0, 28, 4.0):
        with pytest.raises(ValueError, match="upsampling factor"):
            gu.checkerboard_score(torch.rand(5, 1, 28, 28), stride)


def test_checkerboard_score_of_real_mnist():
    root = ROOT.parent / "shared" / "data"
    try:
        x, _, _ = gu.load_images("mnist", train=False, root=root, download=False)
    except FileNotFoundError as exc:
        pytest.skip(f"no MNIST test images: {exc}")
    score = gu.checkerboard_score(x, 4)
    assert score["mean_db"] == pytest.approx(-0.03, abs=0.05)      # the 10,000 test images: -0.032 dB
    assert abs(score["nyquist_db"]) < 0.5
