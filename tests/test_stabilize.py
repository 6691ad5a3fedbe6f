"""The stabilizing tricks of notebook 04: penalties, D variants, mixture metrics, Dirac-GAN, seed batching."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import gan_utils as gu


def _smooth_d(device, in_dim=3):
    """A small smooth D in float64, so that finite differences are exact to ~1e-8."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(in_dim, 16), nn.Tanh(), nn.Linear(16, 1)).double().to(device)


def _fd_grad(D, x, eps=1e-6):
    """Central finite differences of D's output w.r.t. each input coordinate. x: (N, d) -> (N, d)."""
    g = torch.zeros_like(x)
    with torch.no_grad():
        for j in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[:, j] = eps
            g[:, j] = (D(x + e) - D(x - e))[:, 0] / (2 * eps)
    return g


def test_r1_penalty_matches_finite_differences(device):
    D = _smooth_d(device)
    real = torch.randn(7, 3, dtype=torch.float64, device=device)
    expected = _fd_grad(D, real).pow(2).sum(1).mean()
    assert torch.allclose(gu.r1_penalty(D, real), expected, rtol=1e-6)
    # the GANLoss adds gamma / 2 times it to the BCE loss, and trains D through it
    fake = torch.randn(7, 3, dtype=torch.float64, device=device)
    loss, real_out, fake_out = gu.r1_loss(gamma=4.0).d_loss(D, real, fake)
    assert torch.allclose(loss, gu.discriminator_loss(real_out, fake_out) + 2.0 * expected, rtol=1e-6)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters())


def test_gradient_penalty_matches_finite_differences(device):
    D = _smooth_d(device)
    real = torch.randn(9, 3, dtype=torch.float64, device=device)
    fake = torch.randn(9, 3, dtype=torch.float64, device=device) + 2
    torch.manual_seed(1)
    gp = gu.gradient_penalty(D, real, fake)
    torch.manual_seed(1)                                   # the same interpolation weights
    a = torch.rand(9, 1, device=device, dtype=torch.float64)
    xhat = a * real + (1 - a) * fake
    expected = (_fd_grad(D, xhat).norm(dim=1) - 1).pow(2).mean()
    assert torch.allclose(gp, expected, rtol=1e-6)
    # a linear critic with ||w|| = 1 has no penalty
    lin = nn.Linear(3, 1).double().to(device)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, 0.0, 0.8]], dtype=torch.float64))
    assert gu.gradient_penalty(lin, real, fake).item() < 1e-12


def test_wgan_gp_and_hinge_losses(device):
    lin = nn.Linear(2, 1).to(device)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))        # ||grad|| = 5 everywhere
        lin.bias.zero_()
    real, fake = torch.ones(4, 2, device=device), torch.zeros(4, 2, device=device)
    loss = gu.wgan_gp_loss(lam=0.5)
    assert loss.critic
    value, real_out, fake_out = loss.d_loss(lin, real, fake)
    assert value.item() == pytest.approx(0 - 7 + 0.5 * 16)
    assert loss.g_loss(lin, fake, real).item() == 0
    hinge = gu.losses.hinge_loss()
    assert hinge.critic and not gu.r1_loss().critic
    assert hinge.d_loss(lin, real, fake)[0].item() == pytest.approx(0 + 1)  # relu(1 - 7) + relu(1 + 0)


def test_minibatch_discrimination_shape_and_batch_dependence(device):
    torch.manual_seed(0)
    layer = gu.models.MinibatchDiscrimination(16, kernels=5, kernel_dim=3).to(device)
    x = torch.randn(10, 16, device=device)
    out = layer(x)
    assert out.shape == (10, 21) and torch.equal(out[:, :16], x)
    same = layer(x[:1].expand(10, 16))                      # a collapsed batch: every c_b = 1
    assert torch.allclose(same[:, 16:], torch.full((10, 5), 10.0, device=device))
    y = x.clone()
    y[5] += 1.0                                             # changing one example changes the others' features
    assert not torch.allclose(layer(y)[0, 16:], out[0, 16:])
    D = gu.MLPDiscriminator(in_dim=2, widths=(32, 32), minibatch=8).to(device)
    assert D(torch.randn(12, 2, device=device)).shape == (12, 1)


def test_spectral_normalize_gives_unit_largest_singular_value(device):
    torch.manual_seed(0)
    D = gu.spectral_normalize(gu.MLPDiscriminator(in_dim=2, widths=(128, 128, 128))).to(device)
    with torch.no_grad():
        for _ in range(30):                                 # each forward pass runs one power iteration
            D(torch.randn(64, 2, device=device))
    linears = [m for m in D.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4
    for m in linears:
        sigma = torch.linalg.matrix_norm(m.weight.detach(), ord=2).item()
        raw = torch.linalg.matrix_norm(m.parametrizations.weight.original.detach(), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02) and raw != pytest.approx(1.0, abs=0.05)


def test_packed_discriminator_judges_groups(device):
    D = gu.MLPDiscriminator(in_dim=2, widths=(16,), pack=4).to(device)
    x = torch.randn(12, 2, device=device)
    out = D(x)
    assert out.shape == (3, 1) and D.body[1].in_features == 8
    assert torch.allclose(D(x[4:8]), out[1:2])              # group 1 is samples 4..7
    with pytest.raises(ValueError, match="multiple of 4"):
        D(x[:10])
    loss, _, _ = gu.get_loss("nonsaturating").d_loss(D, x, x + 1)
    assert torch.isfinite(loss)


def test_critic_variants_have_no_batchnorm(device):
    C = gu.DCGANDiscriminator(norm=None).to(device)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in C.modules())
    C_ln = gu.DCGANDiscriminator(norm="layer").to(device)
    x = torch.randn(4, 1, 28, 28, device=device)
    assert C(x).shape == C_ln(x).shape == (4, 1)
    # per example: a critic's score of an example does not depend on the rest of the batch
    # (CUDA runs convolutions in TF32 by default: agreement to 1e-3 there)
    assert torch.allclose(C_ln(x)[:1], C_ln(x[:1]), atol=1e-6 if device == "cpu" else 1e-3)
    assert gu.wgan_gp_loss(10.0).d_loss(C_ln, x, torch.rand_like(x))[0].isfinite()


# ----------------------------------------------------------------------------- mixture metrics
CENTERS = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def test_modes_covered_needs_one_high_quality_sample():
    pts = torch.tensor([[0.1, 0.0], [10.0, 0.29], [0.0, 10.31], [5.0, 5.0]])  # std 0.1: 3 std = 0.3
    m = gu.mode_metrics(pts, CENTERS, std=0.1, min_count=1)
    assert m["modes_covered"] == 2                          # (0, 10.31) is 0.31 away: not high quality
    assert m["high_quality"] == pytest.approx(0.5)


def test_modes_min_count_and_high_quality_fraction():
    pts = torch.cat([torch.zeros(20, 2), torch.full((19, 2), 10.0), torch.tensor([[10.0, 0.0]]),
                     torch.full((10, 2), 5.0)])
    m = gu.mode_metrics(pts, CENTERS, std=0.1, min_count=20)
    assert m["modes_covered"] == 3 and m["modes_min_count"] == 1
    assert m["high_quality"] == pytest.approx(40 / 50)
    # the default min_count is 20 per 2,500 samples: 1 for 50 samples
    assert gu.mode_metrics(pts, CENTERS, std=0.1)["modes_min_count"] == 3


def test_kl_to_uniform_of_the_high_quality_histogram():
    even = CENTERS.repeat(5, 1)
    assert gu.mode_metrics(even, CENTERS, std=0.1)["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    one = torch.zeros(8, 2)
    assert gu.mode_metrics(one, CENTERS, std=0.1)["kl_to_uniform"] == pytest.approx(math.log(4))
    two = torch.cat([torch.zeros(3, 2), torch.full((1, 2), 10.0), torch.full((50, 2), 5.0)])  # far points ignored
    q = np.array([0.75, 0.25])
    kl = gu.mode_metrics(two, CENTERS, std=0.1)["kl_to_uniform"]
    assert kl == pytest.approx(float((q * np.log(4 * q)).sum())) and math.isfinite(kl)
    assert math.isnan(gu.kl_to_uniform([0, 0, 0]))


# ----------------------------------------------------------------------------- Dirac-GAN
def test_dirac_field_is_the_papers():
    """At (theta, psi) the GAN's field is (-psi f'(psi theta), theta f'(psi theta)), f'(t) = sigmoid(-t)."""
    from gan_utils.lessons import dirac

    theta, psi = 0.7, -1.3
    s = 1 / (1 + math.exp(psi * theta))
    g_t, g_p = dirac.dirac_gradients(theta, psi)
    assert (g_t, g_p) == (pytest.approx(psi * s, rel=1e-12), pytest.approx(-theta * s, rel=1e-12))
    g_t, g_p = dirac.dirac_gradients(theta, psi, r1=0.3)
    assert g_p == pytest.approx(-theta * s + 0.3 * psi, rel=1e-12)
    g_t, g_p = dirac.dirac_gradients(theta, psi, loss="wgan", gp=0.35)
    assert (g_t, g_p) == (pytest.approx(psi), pytest.approx(-theta + 0.7 * (abs(psi) - 1) * -1))


@pytest.mark.parametrize("name, mode, distance", [
    ("GAN", "simultaneous", 3.0969),          # diverges: spirals outwards
    ("NSGAN", "alternating", 0.28392),
    ("WGAN", "alternating", 1.02412),         # psi sticks to the clip
    ("WGAN-GP", "simultaneous", 1.80179),
    ("R1 0.3", "alternating", 2.3009e-07),    # converges
    ("consensus", "simultaneous", 2.5786e-10),
])
def test_dirac_distances_after_500_steps(name, mode, distance):
    from gan_utils.lessons import dirac

    path = dirac.dirac_trajectory(dirac.CONFIGS[name], mode)
    assert path.shape == (501, 2) and path.dtype == torch.float64
    assert path[0].tolist() == [1.0, 1.0]
    assert path[-1].norm().item() == pytest.approx(distance, rel=1e-4)


def test_plot_dirac_draws_field_and_trajectory():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gan_utils.lessons import dirac

    fig, ax = plt.subplots()
    path = dirac.dirac_trajectory(dirac.CONFIGS["NSGAN"], "simultaneous", steps=20)
    dirac.plot_dirac(dirac.CONFIGS["NSGAN"], path, ax=ax, n=5)
    assert len(ax.collections) == 1 and len(ax.lines) == 4   # arrows; path, start, end, equilibrium
    plt.close(fig)


# ----------------------------------------------------------------------------- seed batching
def test_batched_mlp_matches_its_modules(device):
    from gan_utils.lessons import seeds as ensemble

    Gs = [ensemble.toy_models(s, device)[0] for s in (0, 1)]
    G = ensemble.BatchedMLP(Gs, nn.ReLU())
    z = torch.randn(2, 5, 2, device=device)
    out = G(z)
    assert out.shape == (2, 5, 2)
    for s in range(2):
        assert torch.allclose(out[s], Gs[s](z[s]), atol=1e-6)
    with pytest.raises(ValueError, match="plain MLPs"):
        ensemble.BatchedMLP([gu.MLPDiscriminator(2, (8,), minibatch=4)], nn.LeakyReLU(0.2))


def test_a_batched_seed_trains_as_the_same_seed_alone(device):
    """Equal up to rounding for a few steps; Adam and the GAN game amplify the last-bit differences
    of batched products over hundreds of steps, so a long run is compared by its statistics."""
    from gan_utils.lessons import seeds as ensemble

    centers, std, steps, batch = gu.ring_centers(8), 0.02, 15, 64
    Gs, Ds, history = ensemble.train_toy_seeds([3, 5, 7], centers, std, steps, device=device, batch_size=batch)
    assert history["loss_d"].shape == (steps,)
    # seed 5 alone, with the course's own d_step and g_step
    G, D = ensemble.toy_models(5, device)
    gen = torch.Generator(device=device).manual_seed(5)
    sample = ensemble.mixture_sampler(centers, std)
    noise = lambda n: torch.randn(n, 2, generator=gen, device=device)  # noqa: E731
    opt_g = gu.make_optimizer(G, "adam", 1e-3, betas=(0.5, 0.999))
    opt_d = gu.make_optimizer(D, "adam", 1e-3, betas=(0.5, 0.999))
    loss = gu.get_loss("nonsaturating")
    for _ in range(steps):
        real = sample(batch, gen)
        gu.d_step(G, D, opt_d, real, noise, loss)
        gu.g_step(G, D, opt_g, real, noise, loss)
    untrained = ensemble.toy_models(5, device)[0]
    for p_batched, p_alone, p_init in zip(Gs[1].parameters(), G.parameters(), untrained.parameters()):
        assert not torch.allclose(p_alone, p_init, atol=1e-4)         # it did train
        assert torch.allclose(p_batched, p_alone, rtol=1e-4, atol=1e-4)  # a tenth of one Adam step
    for p_batched, p_alone in zip(Ds[1].parameters(), D.parameters()):
        assert torch.allclose(p_batched, p_alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(Gs[0].net[0].weight, Gs[1].net[0].weight)  # seeds 3 and 5 differ


def _batched_toy_ds(device, seeds=(0, 1), **variant):
    from gan_utils.lessons import seeds as ensemble

    Ds = [ensemble.toy_models(s, device, **variant)[1] for s in seeds]
    return Ds, ensemble.BatchedMLP(Ds, nn.LeakyReLU(0.2))


def test_batched_penalties_are_each_seeds_mean(device):
    """R1, the gradient penalty and feature matching see S seeds' batches (S, N, 2): per example
    gradient norms, and the mean over seeds of each seed's own value."""
    Ds, D = _batched_toy_ds(device)
    torch.manual_seed(1)
    real, fake = torch.randn(2, 6, 2, device=device), torch.randn(2, 6, 2, device=device)
    norms = gu.losses.input_gradient_norms(D, real)
    assert norms.shape == (2, 6)
    for s in range(2):
        assert torch.allclose(norms[s], gu.losses.input_gradient_norms(Ds[s], real[s]), atol=1e-6)
    r1 = gu.r1_loss(gamma=0.1)
    alone = [r1.d_loss(Ds[s], real[s], fake[s])[0] for s in range(2)]
    assert torch.allclose(r1.d_loss(D, real, fake)[0], sum(alone) / 2, atol=1e-6)
    # with fake = real every interpolate is the real point, whatever the random mixing weights
    gp = [gu.gradient_penalty(Ds[s], real[s], real[s]) for s in range(2)]
    assert torch.allclose(gu.gradient_penalty(D, real, real), sum(gp) / 2, atol=1e-6)
    fm = [gu.feature_matching_loss(Ds[s].features(real[s]), Ds[s].features(fake[s])) for s in range(2)]
    assert torch.allclose(gu.feature_matching_loss(D.features(real), D.features(fake)), sum(fm) / 2, atol=1e-6)


def test_batched_packed_and_spectral_discriminators_match_their_modules(device):
    Ds, D = _batched_toy_ds(device, pack=4)
    x = torch.randn(2, 8, 2, device=device)
    assert D(x).shape == (2, 2, 1)
    for s in range(2):
        assert torch.allclose(D(x)[s], Ds[s](x[s]), atol=1e-6)
    Ds, D = _batched_toy_ds(device, spectral=True)
    for _ in range(20):                          # training mode: one power iteration per forward pass
        out = D(x)
        ref = [Ds[s](x[s]) for s in range(2)]
    for s in range(2):
        assert torch.allclose(out[s], ref[s], atol=1e-5)
    D.eval()
    for i in range(len(D.weights)):
        sigmas = torch.linalg.matrix_norm(D._weight(i).detach(), ord=2)
        assert torch.allclose(sigmas, torch.ones_like(sigmas), atol=0.02)


@pytest.mark.parametrize("trick", ["GAN", "label smoothing", "feature matching", "minibatch discrimination",
                                   "TTUR", "PacGAN4", "spectral norm", "R1", "WGAN", "WGAN-GP"])
def test_every_toy_trick_trains(trick, device):
    from gan_utils.lessons import seeds as ensemble

    steps = {"k": []}
    Gs, Ds, history = ensemble.train_toy_seeds([0, 1], gu.grid_centers(), 0.05, 2, device=device, trick=trick,
                                               batch_size=32, record=lambda step, s, G: steps["k"].append(step),
                                               record_every=1)
    alone = trick == "minibatch discrimination"        # not batched: each seed trains alone
    assert steps["k"] == ([0, 1, 2, 0, 1, 2] if alone else [0, 0, 1, 1, 2, 2])
    assert history["loss_d"].shape == (2,)
    assert torch.isfinite(history["loss_d"]).all() and torch.isfinite(history["loss_g"]).all()
    untrained = ensemble.toy_models(0, device)[0]
    assert not torch.allclose(Gs[0].net[0].weight, untrained.net[0].weight)
    if trick == "WGAN":                          # clipped critic
        assert max(p.abs().max().item() for p in Ds[0].parameters()) <= 0.01 + 1e-7


def test_toy_ema_and_lr_decay(device):
    """"ema": the returned G is the running average of the trained G's weights, updated after every
    G step; "lr_decay": the learning rates fall linearly to 0, so the last step moves nothing."""
    from gan_utils.lessons import seeds as ensemble

    centers, std, steps = gu.grid_centers(), 0.05, 4
    plain = ensemble.train_toy_seeds([0, 1], centers, std, steps, device=device, batch_size=32)
    seen = []
    averaged = ensemble.train_toy_seeds([0, 1], centers, std, steps, device=device, batch_size=32,
                                        trick={"ema": 0.5}, record=lambda step, s, G: seen.append(step),
                                        record_every=2)
    assert seen == [0, 0, 2, 2, 4, 4]
    # the same training (same random numbers), so D is the plain run's; G is the average of the
    # 4 G's after each step, with weights 1/8, 1/8, 1/4, 1/2 (the first update copies G)
    for p_avg, p_plain in zip(averaged[1][0].parameters(), plain[1][0].parameters()):
        assert torch.allclose(p_avg, p_plain)
    assert not torch.allclose(averaged[0][0].net[0].weight, plain[0][0].net[0].weight)

    G, D = ensemble.toy_models(0, device)
    G_avg = ensemble.BatchedMLP([G], nn.ReLU())
    opt = torch.optim.SGD(G_avg.parameters(), lr=1.0)
    G_out, every_step = ensemble._run_settings(G_avg, [opt], 2, {"ema": 0.5, "lr_decay": True})
    w = [G_avg.weights[0].detach().clone()]
    for _ in range(2):
        with torch.no_grad():
            G_avg.weights[0].add_(1.0)
        w.append(G_avg.weights[0].detach().clone())
        opt.step()                                           # no gradients: moves nothing
        every_step()
    assert torch.allclose(G_out.weights[0], 0.5 * w[1] + 0.5 * w[2])
    assert opt.param_groups[0]["lr"] == 0.0                  # 1.0 -> 0.5 -> 0.0
    with pytest.raises(ValueError, match="batched"):
        ensemble.train_toy_seeds([0], centers, std, 1, device=device, trick={"minibatch": 4, "ema": 0.9})


def test_minibatch_discrimination_is_the_papers_formula(device):
    torch.manual_seed(0)
    layer = gu.models.MinibatchDiscrimination(6, kernels=4, kernel_dim=3).to(device)
    x = torch.randn(7, 6, device=device)
    m = (x @ layer.T).view(7, 4, 3)
    naive = torch.exp(-(m[:, None] - m[None, :]).abs().sum(3)).sum(1)      # o(x_i)_b = sum_j c_b(x_i, x_j)
    assert torch.allclose(layer(x)[:, 6:], naive, atol=1e-5)


def test_mixture_scores_use_the_seeds_fixed_noise(device):
    from gan_utils.lessons import seeds

    G = seeds.toy_models(0, device)[0]
    x, scores = seeds.mixture_scores(G, gu.ring_centers(8), 0.02, seed=3, n=100)
    y, _ = seeds.mixture_scores(G, gu.ring_centers(8), 0.02, seed=3, n=100)
    assert x.shape == (100, 2) and x.device.type == "cpu" and torch.equal(x, y)
    assert not torch.equal(x, seeds.mixture_scores(G, gu.ring_centers(8), 0.02, seed=4, n=100)[0])
    assert set(scores) == {"modes_covered", "modes_min_count", "high_quality", "kl_to_uniform"}
