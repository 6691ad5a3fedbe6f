"""Dirac-GAN (Mescheder et al. 2018): data at 0, G(z) = theta, D(x) = psi * x the paper's logit of "x is fake"
(ours of "x is real" is -psi x); equilibrium theta = psi = 0. The course's losses of those logits, exact, with
autograd gradients in float64:
    the GAN:       L_D = -log sigmoid(0) - log(1 - sigmoid(-psi theta)),  L_G = log(1 - sigmoid(-psi theta))
    NSGAN:         L_G = -log sigmoid(-psi theta)
    WGAN:          L_D = -psi theta, L_G = psi theta, psi clipped to [-clip, clip] after each step
    WGAN-GP:       L_D += lam (|psi| - 1)^2        (grad_x D = psi everywhere)
    R1:            L_D += gamma / 2 psi^2          (grad_x D at the data)
    instance noise: real and fake points get N(0, std^2) noise, the expectation is a sample mean
    consensus:     both players also descend  c / 2 ||v||^2,  v = the GAN's gradient field
"""
import math

import matplotlib.pyplot as plt
import torch

from ..losses import discriminator_loss, generator_loss_nonsaturating, generator_loss_saturating

# The reference notebook's settings (LMescheder/GAN_stability DiracGAN.ipynb; its WGAN_GP reg=0.7 is lam = 0.35).
# Consensus uses the exact gradient (the reference halves the f' f'' term): 2.6e-10 / 1.7e-11 vs 2.1e-10 / 1.3e-11.
CONFIGS = {
    "GAN": {},
    "NSGAN": {"loss": "nonsaturating"},
    "WGAN": {"loss": "wgan", "clip": 1.0},
    "WGAN-GP": {"loss": "wgan", "gp": 0.35},
    "instance noise": {"noise": 0.7},
    "R1 0.3": {"r1": 0.3},
    "R1 1.0": {"r1": 1.0},
    "consensus": {"consensus": 1.0},
}


def dirac_losses(theta, psi, loss="saturating", gp=0.0, r1=0.0, noise=0.0, samples=1000, generator=None):
    """(L_D, L_G) at scalar tensors theta, psi. loss: 'saturating', 'nonsaturating' or 'wgan'; gp: WGAN-GP's lam;
    r1: R1's gamma; noise: instance noise's std, averaged over `samples` draws of `generator`."""
    if loss not in ("saturating", "nonsaturating", "wgan"):
        raise ValueError(f"the Dirac-GAN's loss must be 'saturating', 'nonsaturating' or 'wgan', got {loss!r}")
    if noise > 0:
        fake = theta + noise * torch.randn(samples, 1, dtype=theta.dtype, generator=generator)
        real = noise * torch.randn(samples, 1, dtype=theta.dtype, generator=generator)
    else:
        fake, real = theta.view(1, 1), torch.zeros(1, 1, dtype=theta.dtype)
    real_logit, fake_logit = -psi * real, -psi * fake
    if loss == "wgan":
        loss_d, loss_g = fake_logit.mean() - real_logit.mean(), -fake_logit.mean()
    else:
        loss_d = discriminator_loss(real_logit, fake_logit)
        loss_g = (generator_loss_saturating if loss == "saturating" else generator_loss_nonsaturating)(fake_logit)
    loss_d = loss_d + gp * (psi.abs() - 1) ** 2 + r1 / 2 * psi ** 2
    return loss_d, loss_g


def dirac_gradients(theta, psi, consensus=0.0, **config):
    """(dL_G/dtheta, dL_D/dpsi) at floats theta, psi; consensus > 0 adds c grad(||v||^2 / 2); config: dirac_losses'."""
    t = torch.tensor(float(theta), dtype=torch.float64, requires_grad=True)
    p = torch.tensor(float(psi), dtype=torch.float64, requires_grad=True)
    loss_d, loss_g = dirac_losses(t, p, **config)
    (g_t,) = torch.autograd.grad(loss_g, t, retain_graph=True, create_graph=consensus > 0)
    (g_p,) = torch.autograd.grad(loss_d, p, create_graph=consensus > 0)
    if consensus > 0:
        c_t, c_p = torch.autograd.grad((g_t ** 2 + g_p ** 2) / 2, (t, p))
        g_t, g_p = g_t + consensus * c_t, g_p + consensus * c_p
    return g_t.item(), g_p.item()


def dirac_trajectory(config, mode="simultaneous", steps=500, lr=0.2, start=(1.0, 1.0), seed=0):
    """Gradient descent from `start`, mode 'simultaneous' or 'alternating' (G first). config: a CONFIGS entry;
    seed: instance noise's. Returns a (steps + 1, 2) float64 tensor of (theta, psi)."""
    if mode not in ("simultaneous", "alternating"):
        raise ValueError(f"mode must be 'simultaneous' or 'alternating', got {mode!r}")
    config = dict(config)
    clip = config.pop("clip", math.inf)
    if config.get("noise", 0) > 0:
        config["generator"] = torch.Generator().manual_seed(seed)
    theta, psi = start[0], max(-clip, min(clip, start[1]))
    path = [(theta, psi)]
    for _ in range(steps):
        g_t, g_p = dirac_gradients(theta, psi, **config)
        theta = theta - lr * g_t
        if mode == "alternating":
            g_p = dirac_gradients(theta, psi, **config)[1]
        psi = max(-clip, min(clip, psi - lr * g_p))
        path.append((theta, psi))
    return torch.tensor(path, dtype=torch.float64)


def dirac_distances(configs=CONFIGS, steps=500, lr=0.2, start=(1.0, 1.0)):
    """Distance to the equilibrium after `steps` steps: {name: {'simultaneous': float, 'alternating': float}}."""
    return {name: {mode: dirac_trajectory(cfg, mode, steps, lr, start)[-1].norm().item()
                   for mode in ("simultaneous", "alternating")} for name, cfg in configs.items()}


def plot_dirac(config, trajectory=None, ax=None, lim=2.0, n=15, title=None):
    """The field -(dL_G/dtheta, dL_D/dpsi) on [-lim, lim]^2 as arrows and a trajectory (T, 2) from its start (dot)
    to its end (cross); clipping is not drawn. Returns the axes."""
    ax = ax or plt.gca()
    config = {k: v for k, v in config.items() if k != "clip"}
    if config.get("noise", 0) > 0:
        config["generator"] = torch.Generator().manual_seed(0)
    grid = torch.linspace(-lim, lim, n, dtype=torch.float64)
    th, ps = torch.meshgrid(grid, grid, indexing="xy")
    field = torch.tensor([[-g for g in dirac_gradients(t, p, **config)] for t, p in zip(th.flatten(), ps.flatten())])
    ax.quiver(th.flatten(), ps.flatten(), field[:, 0], field[:, 1], color="0.6", angles="xy")
    if trajectory is not None:
        ax.plot(trajectory[:, 0], trajectory[:, 1], lw=1.2)
        ax.plot(*trajectory[0], "o", color="C1")
        ax.plot(*trajectory[-1], "x", color="C3", ms=8)
    ax.plot(0, 0, "*", color="k", ms=10)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel=r"$\theta$", ylabel=r"$\psi$", aspect="equal", title=title)
    return ax
