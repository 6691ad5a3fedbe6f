"""gan_utils.metrics for the toy problems."""
import math

import pytest
import torch

import gan_utils as gu


def test_w1_and_ks_to_a_gaussian():
    q = torch.distributions.Normal(4.0, 1.25).icdf(torch.linspace(0.0005, 0.9995, 1000)).view(-1, 1)
    assert gu.w1_to_gaussian(q, 4.0, 1.25) < 0.01 and gu.metrics.ks_to_gaussian(q, 4.0, 1.25) < 0.002
    assert math.isclose(gu.w1_to_gaussian(q + 0.5, 4.0, 1.25), 0.5, abs_tol=0.01)  # a shift costs its size
    assert gu.metrics.ks_to_gaussian(torch.full((100, 1), 4.0), 4.0, 1.25) == pytest.approx(0.5)


def test_line_metrics():
    x = torch.linspace(-2, 2, 1000)
    on = torch.stack([x, 0.5 * x + 1], 1)
    assert gu.metrics.line_distances(on, 0.5, 1.0).max() < 1e-6
    off = on + torch.tensor([0.0, 1.0])
    assert gu.metrics.line_distances(off, 0.5, 1.0).mean() == pytest.approx(1 / math.hypot(0.5, 1), rel=1e-5)
    assert gu.metrics.line_coverage(on, 0.5, 1.0, (-2, 2)) == 1.0
    half = on[x < 0]
    assert gu.metrics.line_coverage(half, 0.5, 1.0, (-2, 2)) == pytest.approx(0.5)
    assert gu.metrics.line_coverage(off, 0.5, 1.0, (-2, 2)) == 0.0


def test_mode_metrics_counts_covered_modes_and_quality():
    gu.seed_everything(0)
    centers = gu.ring_centers(8)
    on_four = gu.sample_mixture_2d(2500, centers[:4], std=0.02)
    m = gu.mode_metrics(on_four, centers, std=0.02)
    assert m["modes_covered"] == 4 and m["high_quality"] > 0.98  # 2D Gaussian: P(r < 3 std) = 1 - exp(-4.5) = 0.989
    spread = torch.randn(2500, 2) * 3
    assert gu.mode_metrics(spread, centers, std=0.02)["high_quality"] < 0.05
    assert gu.mode_metrics(gu.sample_mixture_2d(2500, centers, 0.02), centers, 0.02)["modes_covered"] == 8


def test_ks_statistic_pinned_on_a_sample_worked_out_by_hand(device, monkeypatch):
    """x = 1 + 2 * (-1, 0, 2) against N(1, 2^2): u = Phi(-1), Phi(0), Phi(2) = 0.158655, 0.5, 0.977250;
    D+ = max(1/3 - 0.158655, 2/3 - 0.5, 1 - 0.977250) = 0.174679,
    D- = max(0.158655 - 0, 0.5 - 1/3, 0.977250 - 2/3) = 0.310583, so D = Phi(2) - 2/3."""
    x = torch.tensor([[5.0], [-1.0], [1.0]], device=device)  # unsorted, on the test's device
    assert gu.metrics.ks_to_gaussian(x, 1.0, 2.0) == pytest.approx(0.310583, abs=1e-6)
    from scipy import stats

    def old_scipy_kstest(*args, **kwargs):  # what kstest(x, "norm", args=...) raised on one scipy release
        raise TypeError("ndtr() takes from 1 to 2 positional arguments but 3 were given")

    monkeypatch.setattr(stats, "kstest", old_scipy_kstest)
    assert gu.metrics.ks_to_gaussian(x, 1.0, 2.0) == pytest.approx(0.310583, abs=1e-6)
    assert gu.metrics.ks_to_gaussian([0.0], 0.0, 1.0) == pytest.approx(0.5)  # one sample at the median
    with pytest.raises(ValueError, match="sigma > 0"):
        gu.metrics.ks_to_gaussian(x, 1.0, 0.0)


def test_toy_metrics_take_tensors_on_any_device(device):
    gu.seed_everything(0)
    x = gu.sample_gaussian_1d(2000, 4.0, 1.25, device=device)
    assert x.device.type == device
    assert gu.w1_to_gaussian(x, 4.0, 1.25) < 0.1 and gu.metrics.ks_to_gaussian(x, 4.0, 1.25) < 0.05
    assert gu.w1_to_gaussian(x + 1, 5.0, 1.25) == pytest.approx(gu.w1_to_gaussian(x, 4.0, 1.25), abs=1e-5)
    p = gu.sample_line_2d(500, 0.5, 1.0, device=device)
    assert gu.metrics.line_distances(p, 0.5, 1.0).max() < 1e-5 and gu.metrics.line_coverage(p, 0.5, 1.0, (-2, 2)) == 1.0
    ring = gu.sample_mixture_2d(2500, gu.ring_centers(8), 0.02, device=device)
    assert gu.mode_metrics(ring, gu.ring_centers(8).to(device), 0.02)["modes_covered"] == 8


def test_segment_distances_measure_the_distance_to_the_segment_not_the_line():
    """(4, 3) lies on the line y = x/2 + 1 but beyond the segment's end (2, 2): sqrt(5) away."""
    p = torch.tensor([[4.0, 3.0], [0.0, 1.0]])
    assert (gu.metrics.line_distances(p, 0.5, 1.0) <= 0.1).mean() == 1.0
    assert (gu.metrics.segment_distances(p, 0.5, 1.0, (-2.0, 2.0)) <= 0.1).mean() == 0.5
    assert abs(gu.metrics.segment_distances(p, 0.5, 1.0, (-2.0, 2.0))[0] - 5 ** 0.5) < 1e-9
