"""How close is the generator to the target? Metrics for the toy problems.

All take samples as tensors (or arrays) of shape (n, dim) and return plain Python floats.
"""
import math

import numpy as np
import torch
from scipy import stats


def _numpy(x):
    return x.detach().cpu().double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=float)


def w1_to_gaussian(samples, mu, sigma):
    """Wasserstein-1 distance between the samples' distribution and N(mu, sigma^2):
        W1 = int_0^1 |F^-1(u) - Phi^-1_{mu,sigma}(u)| du  ~  mean_i |x_(i) - q_i|,
    with x_(i) sorted and q_i the target's quantile at u_i = (i + 1/2) / n. samples: (n,) or (n, 1)."""
    x = np.sort(_numpy(samples).ravel())
    u = (np.arange(len(x)) + 0.5) / len(x)
    return float(np.mean(np.abs(x - stats.norm.ppf(u, loc=mu, scale=sigma))))


def wasserstein_1d(a, b):
    """Wasserstein-1 distance between two 1D samples (scipy). a: (n,) or (n, 1), b: (m,) or (m, 1)."""
    return float(stats.wasserstein_distance(_numpy(a).ravel(), _numpy(b).ravel()))


def ks_to_gaussian(samples, mu, sigma):
    """Kolmogorov-Smirnov statistic sup_x |F_n(x) - Phi_{mu,sigma}(x)| of the samples against
    N(mu, sigma^2); 0 is a perfect fit. samples: (n,) or (n, 1)."""
    return float(stats.kstest(_numpy(samples).ravel(), "norm", args=(mu, sigma)).statistic)


def line_distances(points, slope, intercept):
    """Distance of each point (x, y) to the line y = slope x + intercept:
    |slope x - y + intercept| / sqrt(slope^2 + 1). points: (n, 2) -> (n,) array."""
    p = _numpy(points)
    return np.abs(slope * p[:, 0] - p[:, 1] + intercept) / math.hypot(slope, 1.0)


def mean_line_distance(points, slope, intercept):
    """Mean distance of the points to the line. points: (n, 2)."""
    return float(line_distances(points, slope, intercept).mean())


def fraction_near_line(points, slope, intercept, tol=0.1):
    """Fraction of points within `tol` of the line. points: (n, 2)."""
    return float((line_distances(points, slope, intercept) <= tol).mean())


def line_coverage(points, slope, intercept, x_range, bins=20, tol=0.1):
    """Fraction of the segment covered: the segment is cut into `bins` equal pieces, and a piece
    counts as covered when at least 10% of the points it would get from a uniform spread land
    on it (projected on the line) within `tol` of the line. points: (n, 2)."""
    p = _numpy(points)
    direction = np.array([1.0, slope]) / math.hypot(1.0, slope)
    origin = np.array([x_range[0], slope * x_range[0] + intercept])
    length = (x_range[1] - x_range[0]) * math.hypot(1.0, slope)
    t = (p - origin) @ direction  # position along the segment
    near = (line_distances(p, slope, intercept) <= tol) & (t >= 0) & (t <= length)
    counts, _ = np.histogram(t[near], bins=bins, range=(0, length))
    return float((counts >= max(1.0, 0.1 * len(p) / bins)).mean())


def mode_metrics(samples, centers, std, min_count=None):
    """Mode coverage on a mixture of Gaussians (VEEGAN / PacGAN protocol). A sample is 'high
    quality' if it lies within 3 std of its nearest centre; a mode is covered if at least
    `min_count` high-quality samples fall on it (default: 20 per 2,500 samples, as in PacGAN).
    samples: (n, 2), centers: (m, 2). Returns {'modes_covered', 'high_quality'} (a fraction)."""
    s, c = _numpy(samples), _numpy(centers)
    d = np.linalg.norm(s[:, None, :] - c[None, :, :], axis=2)
    nearest, dist = d.argmin(1), d.min(1)
    good = dist <= 3 * std
    min_count = max(1, round(20 * len(s) / 2500)) if min_count is None else min_count
    per_mode = np.bincount(nearest[good], minlength=len(c))
    return {"modes_covered": int((per_mode >= min_count).sum()), "high_quality": float(good.mean())}
