"""How close is G to the target? Toy metrics take samples (n, dim) (tensors or arrays) and return floats; the
MNIST scores read images through the evaluation classifier the caller passes in."""
import math

import numpy as np
import torch
from scipy import stats

from .data import check_pixels
from .steps import generate


def _numpy(x):   # to the CPU before float64: MPS has none
    return x.detach().cpu().double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=float)


def _samples_1d(samples, sigma, who):
    """Sorted 1D samples of (n,) or (n, 1); ValueError for other shapes, no samples, NaN or sigma <= 0."""
    x = _numpy(samples)
    if x.ndim not in (1, 2) or x.shape[1:] not in ((), (1,)) or not len(x) or not sigma > 0 or not np.isfinite(x).all():
        raise ValueError(f"{who}: need finite samples of shape (n,) or (n, 1) with n >= 1 and sigma > 0, got shape "
                         f"{x.shape} ({int((~np.isfinite(x)).sum())} NaN or infinite) and sigma {sigma}")
    return np.sort(x.ravel())


def w1_to_gaussian(samples, mu, sigma):
    """Wasserstein-1 distance of the samples (n,) or (n, 1) to N(mu, sigma^2), int_0^1 |F^-1(u) - Phi^-1(u)| du:
    the mean distance of the sorted samples to the target's quantiles at (i + 1/2) / n."""
    x = _samples_1d(samples, sigma, "w1_to_gaussian")
    u = (np.arange(len(x)) + 0.5) / len(x)
    return float(np.mean(np.abs(x - stats.norm.ppf(u, loc=mu, scale=sigma))))


def ks_to_gaussian(samples, mu, sigma):
    """Kolmogorov-Smirnov statistic sup_x |F_n(x) - Phi(x)| of the samples (n,) or (n, 1) against N(mu, sigma^2)."""
    x = _samples_1d(samples, sigma, "ks_to_gaussian")
    u = stats.norm.cdf((x - mu) / sigma)
    i = np.arange(1, len(x) + 1)
    return float(max(np.max(i / len(x) - u), np.max(u - (i - 1) / len(x))))


def line_distances(points, slope, intercept):
    """Distance |slope x - y + intercept| / sqrt(slope^2 + 1) of each point (n, 2) to y = slope x + intercept: (n,)."""
    p = _numpy(points)
    return np.abs(slope * p[:, 0] - p[:, 1] + intercept) / math.hypot(slope, 1.0)


def segment_distances(points, slope, intercept, x_range):
    """Distance of each point to the SEGMENT of y = slope x + intercept with x in x_range (the projection on the
    line clamped to the segment's ends). points: (n, 2) -> (n,) array."""
    p = _numpy(points)
    start = np.array([x_range[0], slope * x_range[0] + intercept])
    end = np.array([x_range[1], slope * x_range[1] + intercept])
    direction = end - start
    t = np.clip((p - start) @ direction / (direction @ direction), 0.0, 1.0)  # 0 at start, 1 at end
    return np.linalg.norm(p - (start + t[:, None] * direction), axis=1)


def line_coverage(points, slope, intercept, x_range, bins=20, tol=0.1):
    """Fraction of the segment's `bins` equal pieces that get at least 10% of a uniform spread's share of the
    points (projected on the line, within `tol` of it). points: (n, 2)."""
    p = _numpy(points)
    direction = np.array([1.0, slope]) / math.hypot(1.0, slope)
    origin = np.array([x_range[0], slope * x_range[0] + intercept])
    length = (x_range[1] - x_range[0]) * math.hypot(1.0, slope)
    t = (p - origin) @ direction  # position along the segment
    near = (line_distances(p, slope, intercept) <= tol) & (t >= 0) & (t <= length)
    counts, _ = np.histogram(t[near], bins=bins, range=(0, length))
    return float((counts >= max(1.0, 0.1 * len(p) / bins)).mean())


def mode_metrics(samples, centers, std, min_count=None):
    """Mode coverage on a Gaussian mixture (VEEGAN, PacGAN): a sample within 3 std of its nearest center is 'high
    quality', of that mode. samples: (n, 2), centers: (m, 2). Returns modes_covered (>= 1 such sample), modes_min_count
    (>= min_count, default 20 per 2,500 samples), high_quality (fraction), kl_to_uniform (nats, nan if none)."""
    s, c = _numpy(samples), _numpy(centers)
    if s.ndim != 2 or c.ndim != 2 or s.shape[1] != c.shape[1] or not len(s) or not len(c) or not std > 0:
        raise ValueError(f"mode_metrics: need samples (n, d) and centers (m, d) with n, m >= 1 and std > 0, got "
                         f"shapes {s.shape}, {c.shape} and std {std}")
    d = np.linalg.norm(s[:, None, :] - c[None, :, :], axis=2)
    nearest, dist = d.argmin(1), d.min(1)
    good = dist <= 3 * std
    min_count = max(1, round(20 * len(s) / 2500)) if min_count is None else min_count
    per_mode = np.bincount(nearest[good], minlength=len(c))
    return {"modes_covered": int((per_mode >= 1).sum()), "modes_min_count": int((per_mode >= min_count).sum()),
            "high_quality": float(good.mean()), "kl_to_uniform": kl_to_uniform(per_mode)}


def kl_to_uniform(counts):
    """KL(q || uniform) = sum_k q_k log(m q_k) in nats, q = counts / sum; counts: (m,) -> float (nan if all 0)."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 1 or not len(counts) or not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"kl_to_uniform: counts must be a 1D array of finite non-negative counts, got "
                         f"{counts.tolist()[:12]}")
    if counts.sum() == 0:
        return float("nan")
    q = counts[counts > 0] / counts.sum()
    return float((q * np.log(len(counts) * q)).sum())


# ----------------------------------------------------------------------------- MNIST evaluation

@torch.no_grad()
def _classify(images, classifier, batch_size, what="images"):
    """Logits (N, 10) and features (N, 64), on the CPU, of images (N, 1, 28, 28) in [0, 1]."""
    check_pixels(images, what)
    device = next(classifier.parameters()).device
    logits, feats = [], []
    for i in range(0, len(images), batch_size):
        f = classifier.features(images[i:i + batch_size].to(device).float())
        feats.append(f.cpu())
        logits.append(classifier.head(f).cpu())
    return torch.cat(logits), torch.cat(feats)


def class_histogram(images, classifier, batch_size=1000):
    """How many of `images` (N, 1, 28, 28), pixels in [0, 1], the classifier puts in each class: int array (10,)."""
    logits, _ = _classify(images, classifier, batch_size, "class_histogram")
    return np.bincount(logits.argmax(1).numpy(), minlength=10)


def histogram_metrics(counts, min_fraction=None):
    """Mode coverage of a class histogram `counts` (K,), p = counts / sum: {'modes_covered': #{c : p_c >= min_fraction
    (default 1 / (10 K))}, 'kl_to_uniform': sum_c p_c log(K p_c) nats (0 balanced, log K one class), 'fractions': p}."""
    counts = _numpy(counts)
    if counts.ndim != 1 or not np.isfinite(counts).all() or counts.sum() <= 0 or (counts < 0).any():
        raise ValueError(f"counts must be a 1D array of finite non-negative counts with a positive sum, got "
                         f"{counts.tolist()[:12]}: score at least one image, and check it for NaN")
    p = counts / counts.sum()
    min_fraction = 1.0 / (10 * len(counts)) if min_fraction is None else min_fraction
    return {"modes_covered": int((p >= min_fraction).sum()), "kl_to_uniform": max(kl_to_uniform(counts), 0.0),
            "fractions": p.tolist()}


def classifier_features(images, classifier, batch_size=1000):
    """The classifier's penultimate-layer features of `images` (N, 1, 28, 28) in [0, 1]: (N, 64)."""
    return _classify(images, classifier, batch_size, "classifier_features")[1]


def frechet_distance(feats_a, feats_b):
    """Fréchet distance (the FID formula) between Gaussians fitted to feature sets (N, F) and (M, F):
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}), the root via the eigenvalues of S_a^{1/2} S_b S_a^{1/2}."""
    a, b = _numpy(feats_a), _numpy(feats_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two feature sets (N, F) with the same F and N >= 2, got {a.shape}, {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"frechet_distance: {int((~np.isfinite(a)).sum())} and {int((~np.isfinite(b)).sum())} "
                         f"feature values are NaN or infinite; check the images they come from")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_cross = np.sqrt(np.clip(lam, 0, None)).sum()
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_cross, 0.0))


def generator_scores(G, z, real_features, classifier, y=None):
    """Quick scores of G(z, y), z (N, noise_dim): 'modes' and 'kl' of its class histogram, 'frechet' of its features
    to `real_features` (M, 64); with labels y (N,) int64 also 'accuracy' (fraction classified as y)."""
    logits, feats = _classify(generate(G, z, y), classifier, 1000, "generator_scores")
    h = histogram_metrics(np.bincount(logits.argmax(1).numpy(), minlength=10))
    out = {"modes": h["modes_covered"], "kl": h["kl_to_uniform"], "frechet": frechet_distance(feats, real_features)}
    if y is not None:
        out["accuracy"] = float((logits.argmax(1) == y.cpu()).double().mean())
    return out


PARZEN_SIGMAS = tuple(np.logspace(-1, 0, 10))


@torch.no_grad()
def parzen_log_likelihoods(centers, x, sigmas, batch_size=500):
    """log p(x_i) = log (1/n) sum_j exp(-||x - mu_j||^2 / (2 sigma^2)) - d log(sigma sqrt(2 pi)), per point and
    sigma (float64). centers: (n, d...), x: (N, d...) -> tensor (N, len(sigmas))."""
    check_pixels(centers, "parzen centers")
    check_pixels(x, "parzen points")
    sig = torch.as_tensor(np.asarray(sigmas, dtype=float).reshape(-1))
    if len(sig) == 0 or not (sig > 0).all():
        raise ValueError(f"sigmas must be positive kernel widths, got {sig.tolist()}")
    mu = torch.as_tensor(centers).reshape(len(centers), -1).cpu().double()   # CPU first: MPS has no float64
    x = torch.as_tensor(x).reshape(len(x), -1).cpu().double()
    n, d = mu.shape
    mu_sq = (mu ** 2).sum(1)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        d2 = ((xb ** 2).sum(1, keepdim=True) + mu_sq - 2 * xb @ mu.T).clamp_(min=0)   # (B, n)
        e = torch.logsumexp(-d2[:, None, :] / (2 * sig[None, :, None] ** 2), dim=2) - np.log(n)
        out.append(e - d * torch.log(sig * np.sqrt(2 * np.pi)))
    return torch.cat(out)


def parzen_score(centers, valid, test, sigmas=PARZEN_SIGMAS, batch_size=500):
    """The Parzen estimate of Goodfellow et al. 2014: sigma of `sigmas` best on `valid`, then the mean log p(test)
    in nats and its standard error. centers: (n, ...) samples; valid, test: (N, ...) images in [0, 1].
    Returns {'ll', 'se', 'sigma', 'sigmas', 'valid_ll' (mean per sigma), 'n_centers', 'n_test'}."""
    valid_ll = parzen_log_likelihoods(centers, valid, sigmas, batch_size).mean(0)
    best = int(valid_ll.argmax())
    sigma = float(np.asarray(sigmas)[best])
    ll = parzen_log_likelihoods(centers, test, [sigma], batch_size)[:, 0].numpy()
    return {"ll": float(ll.mean()), "se": float(ll.std() / np.sqrt(len(ll))), "sigma": sigma,
            "sigmas": [float(s) for s in sigmas], "valid_ll": valid_ll.tolist(),
            "n_centers": len(centers), "n_test": len(ll)}


@torch.no_grad()
def nearest_neighbours(x, reference, batch_size=500):
    """Pixel distance of each image of x (N, ...) to its nearest in `reference` (M, ...), pixels in [0, 1], and
    that image's index: (distances (N,) float64, indices (N,) int64)."""
    check_pixels(x, "nearest_neighbours x")
    check_pixels(reference, "nearest_neighbours reference")
    r = torch.as_tensor(reference).reshape(len(reference), -1).float().cpu()
    x = torch.as_tensor(x).reshape(len(x), -1).float().cpu()
    if x.shape[1] != r.shape[1]:
        raise ValueError(f"x has {x.shape[1]} values per image but the reference has {r.shape[1]}: use images of one size")
    r_sq = (r ** 2).sum(1)
    index = torch.cat([((xb ** 2).sum(1, keepdim=True) + r_sq - 2 * xb @ r.T).argmin(1)
                       for xb in x.split(batch_size)])
    return (x.double() - r[index].double()).norm(dim=1), index


def evaluate_generator(G, split, classifier, n=10_000, n_valid=1000, n_test=None):
    """Notebook 03's evaluation of G on an `mnist_split`, n samples (n, 1, 28, 28) from noise seeded 2 (conditional G:
    labels arange(n) % n_classes): {'samples', 'counts', 'hist', 'fd': the Fréchet distance of classifier features to
    as many test images, 'frechet', and for scale that of as many training images, 'real_vs_real'; 'parzen' (sigma on
    n_valid validation images, scored on the first n_test test images, None: all)}."""
    device = next(G.parameters()).device
    z = torch.randn(n, G.noise_dim, generator=torch.Generator().manual_seed(2)).to(device)
    n_classes = getattr(G, "n_classes", 0)
    samples = generate(G, z, torch.arange(n, device=device) % n_classes if n_classes else None).cpu()
    counts = class_histogram(samples, classifier)
    test = split["x_test"] if n_test is None else split["x_test"][:n_test]
    n_ref = min(n, len(test))
    f_test = classifier_features(test[:n_ref], classifier)
    fd = {"frechet": frechet_distance(classifier_features(samples[:n_ref], classifier), f_test),
          "real_vs_real": frechet_distance(classifier_features(split["x_train"][:n_ref], classifier), f_test)}
    return {"samples": samples, "counts": counts, "hist": histogram_metrics(counts), "fd": fd,
            "parzen": parzen_score(samples, split["x_valid"][:n_valid], test)}


def evaluation_summary(e):
    """An `evaluate_generator` result's table numbers, JSON-ready: modes, kl, counts, frechet, real_vs_real,
    parzen, parzen_se, sigma."""
    return {"modes": e["hist"]["modes_covered"], "kl": e["hist"]["kl_to_uniform"], "counts": e["counts"].tolist(),
            "frechet": e["fd"]["frechet"], "real_vs_real": e["fd"]["real_vs_real"], "parzen": e["parzen"]["ll"],
            "parzen_se": e["parzen"]["se"], "sigma": e["parzen"]["sigma"]}


def checkerboard_score(images, stride):
    """Checkerboard energy of an upsampling G in dB: P = mean |FFT2(x - mean x)|^2 over images and channels; at each
    grid bin (u, v) != (0, 0), multiples of (H/stride, W/stride), 10 log10(P[u, v] / median of its 8 off-grid
    neighbours, wrapping); 0 dB: no peak (MNIST test -0.03 dB). images: (N, C, H, W), any range, finite; stride: G's
    total upsampling factor (4 for 7 -> 14 -> 28). A bin with no power around it scores 0 dB if it has none either
    (constant images, a collapsed G), else +inf dB (a pure grid); a powerless bin among powered ones -inf dB.
    Returns {'mean_db': mean over the grid bins, 'nyquist_db': bin (H/2, W/2) or None, 'bins_db': {(u, v): dB}}."""
    if not torch.is_tensor(images) or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"checkerboard_score expects a tensor of images (N, C, H, W), got "
                         f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}")
    if not torch.isfinite(images).all():
        raise ValueError(f"checkerboard_score: {int((~torch.isfinite(images)).sum())} pixels are NaN or infinite; "
                         f"check the generator (did training diverge?) before scoring its samples")
    h, w = images.shape[2:]
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 2 or h % stride or w % stride \
            or h // stride < 2 or w // stride < 2:
        raise ValueError(f"stride must be G's total upsampling factor, an int >= 2 that divides the image "
                         f"size {h}x{w} with at least 2 bins between grid lines (4 for 7 -> 14 -> 28), got {stride!r}")
    x = images.detach().cpu().double()                                              # MPS has no float64
    x = x - x.mean(dim=(2, 3), keepdim=True)
    power = (torch.fft.fft2(x).abs() ** 2).mean(dim=(0, 1)).cpu()                   # (H, W)
    du, dv = h // stride, w // stride
    on_grid = lambda u, v: u % du == 0 and v % dv == 0                              # noqa: E731
    def score(u, v):
        near = [power[(u + a) % h, (v + b) % w] for a in (-1, 0, 1) for b in (-1, 0, 1)
                if not on_grid((u + a) % h, (v + b) % w)]
        peak, median = power[u, v], torch.stack(near).quantile(0.5)
        if peak > 0 < median:
            return 10 * math.log10(peak / median)
        return 0.0 if peak == median else math.copysign(math.inf, peak - median)
    bins = {(u, v): score(u, v) for u in range(0, h, du) for v in range(0, w, dv) if (u, v) != (0, 0)}
    nyquist = score(h // 2, w // 2) if h % 2 == 0 and w % 2 == 0 else None
    return {"mean_db": float(np.mean(list(bins.values()))), "nyquist_db": nyquist, "bins_db": bins}
