"""GAN losses from D's logits l, D(x) = sigmoid(l(x)). Goodfellow et al. 2014's value function
V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]: D ascends it; G descends it or ascends E_z[log D(G(z))]."""
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F

from .utils import _check_int


def discriminator_loss(real_logits, fake_logits, real_label=1.0):
    """Minus the value function, as binary cross-entropy on logits: L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))].
    real_label < 1 (one-sided label smoothing, Salimans et al. 2016), e.g. 0.9: -E_x[0.9 log D(x) + 0.1 log(1 - D(x))];
    fakes stay 0. At D = 1/2 everywhere L_D = 2 log 2. real_logits: (N, 1), fake_logits: (M, 1) -> scalar."""
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0, 1], got {real_label}")
    real_target = torch.full_like(real_logits, real_label)
    return (F.binary_cross_entropy_with_logits(real_logits, real_target)
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss_saturating(fake_logits):
    """The minimax generator loss L_G = E_z[log(1 - D(G(z)))]: its gradient vanishes when D confidently rejects the
    fakes (D(G(z)) -> 0), early in training. log(1 - sigmoid(l)) = -softplus(l). fake_logits: (N, 1) -> scalar."""
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits):
    """The non-saturating generator loss: L_G = -E_z[log D(G(z))] (same fixed point, strong
    gradients early). log sigmoid(l) = -softplus(-l). fake_logits: (N, 1) -> scalar."""
    return F.softplus(-fake_logits).mean()


def feature_matching_loss(real_features, fake_features):
    """Feature matching (Salimans et al. 2016): L_G = || E_x f(x) - E_z f(G(z)) ||_2^2 on an intermediate layer f of D.
    real_features: (N, F), fake_features: (M, F) -> scalar; S seeds batched, (S, N, F), (S, M, F): their mean loss."""
    return (real_features.mean(-2) - fake_features.mean(-2)).pow(2).sum(-1).mean()


def wgan_critic_loss(real_scores, fake_scores):
    """WGAN critic loss (Arjovsky et al. 2017): L_C = E_z[f(G(z))] - E_x[f(x)], minimized, so -L_C estimates the W1
    distance while f stays 1-Lipschitz; raw scores (no sigmoid). real_scores: (N, 1), fake_scores: (M, 1) -> scalar."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores):
    """WGAN generator loss: L_G = -E_z[f(G(z))]. fake_scores: (N, 1) -> scalar."""
    return -fake_scores.mean()


@torch.no_grad()
def clip_weights(model, c=0.01):
    """Clamp every parameter of the critic into [-c, c] (WGAN's crude Lipschitz constraint)."""
    if c <= 0:
        raise ValueError(f"the clipping value c must be positive, got {c}")
    for p in model.parameters():
        p.clamp_(-c, c)


LOSSES = ("saturating", "nonsaturating", "feature_matching", "wgan")


class GANLoss(NamedTuple):
    """What `d_step` and `g_step` need to know about a GAN's objective:
        d_loss(D, real, fake) -> (loss, real_out, fake_out)   D's loss on real (N, ...) and fake (M, ...) batches,
                                 with D's raw outputs (N, 1), (M, 1); seeing D lets it add a gradient penalty.
        g_loss(D, fake, real) -> loss                         G's loss for a fake batch.
        critic: True when D's scores are unbounded (WGAN), False when they are logits.
        clip:   WGAN's weight clipping into [-clip, clip] after each D step; None for no clipping."""
    d_loss: Callable
    g_loss: Callable
    critic: bool = False
    clip: Optional[float] = None


def outputs_loss(loss_fn):
    """Turn a loss of D's outputs, loss_fn(real_out, fake_out), into a `GANLoss.d_loss`."""
    def d_loss(D, real, fake):
        real_out, fake_out = D(real), D(fake)
        return loss_fn(real_out, fake_out), real_out, fake_out
    return d_loss


def get_loss(name="nonsaturating", real_label=1.0):
    """The `GANLoss` that `train_gan` uses for a loss name: 'saturating', 'nonsaturating', 'feature_matching' or 'wgan'
    (critic, no clipping: see `wgan_loss`). real_label < 1 is one-sided label smoothing."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    if name == "wgan":
        if real_label != 1.0:
            raise ValueError("label smoothing (real_label) does not apply to the WGAN critic")
        return wgan_loss(clip=None)
    d_loss = outputs_loss(lambda real_logits, fake_logits: discriminator_loss(real_logits, fake_logits, real_label))
    if name == "saturating":
        return GANLoss(d_loss, lambda D, fake, real: generator_loss_saturating(D(fake)))
    if name == "nonsaturating":
        return GANLoss(d_loss, lambda D, fake, real: generator_loss_nonsaturating(D(fake)))
    return GANLoss(d_loss, lambda D, fake, real: feature_matching_loss(D.features(real).detach(), D.features(fake)))


def wgan_loss(clip=0.01):
    """The WGAN of Arjovsky et al. 2017 as a `GANLoss` (critic): L_C = E f(G(z)) - E f(x), L_G = -E f(G(z)), and after
    every critic step each weight is clamped into [-clip, clip] (0.01 in the paper; None: no clipping)."""
    if clip is not None and not (isinstance(clip, (int, float)) and clip > 0):
        raise ValueError(f"clip must be a positive number such as 0.01, or None, got {clip!r}")
    return GANLoss(outputs_loss(wgan_critic_loss), lambda D, fake, real: wgan_generator_loss(D(fake)),
                   critic=True, clip=clip)


# ----------------------------------------------------------------------------- gradient penalties
def _example_dims(D):
    """The leading dimensions of D's input that index examples: 1, or 2 for (S, N, F) of a `BatchedMLP`."""
    return getattr(D, "batch_dims", 1)


def input_gradient_norms(D, x):
    """||grad_x D(x)||_2 for each example, with a graph so that a loss can be differentiated through it (a penalty on it
    trains D). D(x) is summed over the batch first: examples do not interact in D (no BatchNorm), so the gradient of the
    sum is each example's own gradient. x: (N, ...) -> (N,); for a batched D of S seeds (S, N, F) -> (S, N)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.flatten(_example_dims(D)).norm(dim=-1)


def r1_penalty(D, real):
    """R1 (Mescheder et al. 2018): E_x ||grad_x D(x)||^2 on real data, D's logit. Zero when D is
    flat on the data, which is where D should be at the equilibrium. real: (N, ...) -> scalar."""
    return input_gradient_norms(D, real).pow(2).mean()


def gradient_penalty(D, real, fake):
    """WGAN-GP (Gulrajani et al. 2017): E_xhat (||grad D(xhat)|| - 1)^2 on random interpolates xhat = a x + (1 - a)
    G(z), a ~ U(0, 1) per example: a soft 1-Lipschitz constraint on the critic. real, fake: (N, ...) -> scalar."""
    n = _example_dims(D)
    a = torch.rand(*real.shape[:n], *[1] * (real.ndim - n), device=real.device, dtype=real.dtype)
    xhat = a * real.detach() + (1 - a) * fake.detach()
    return (input_gradient_norms(D, xhat) - 1).pow(2).mean()


def wgan_gp_loss(lam=10.0):
    """WGAN-GP as a `GANLoss` (critic): L_C = E f(G(z)) - E f(x) + lam * gradient_penalty, L_G = -E f(G(z)); no
    BatchNorm in the critic (the penalty is per example). The reference uses lam = 10 on images, 0.1 on the 2D toys."""
    def d_loss(D, real, fake):
        real_out, fake_out = D(real), D(fake)
        return wgan_critic_loss(real_out, fake_out) + lam * gradient_penalty(D, real, fake), real_out, fake_out
    return GANLoss(d_loss, lambda D, fake, real: wgan_generator_loss(D(fake)), critic=True)


def r1_loss(gamma=10.0, real_label=1.0):
    """The non-saturating GAN with R1 as a `GANLoss`: L_D = BCE + gamma / 2 * r1_penalty(D, real),
    L_G = -E log D(G(z)). Mescheder et al. use gamma = 10 on images, 0.1 on the 2D toys."""
    def d_loss(D, real, fake):
        real = real.detach().requires_grad_(True)
        real_out, fake_out = D(real), D(fake)
        (grad,) = torch.autograd.grad(real_out.sum(), real, create_graph=True)  # one forward for both
        penalty = grad.flatten(_example_dims(D)).pow(2).sum(-1).mean()
        return discriminator_loss(real_out, fake_out, real_label) + gamma / 2 * penalty, real_out, fake_out
    return GANLoss(d_loss, lambda D, fake, real: generator_loss_nonsaturating(D(fake)))


def hinge_loss():
    """The hinge loss (Lim & Ye 2017; SAGAN, BigGAN) as a `GANLoss` (critic, unbounded scores):
    L_D = E relu(1 - D(x)) + E relu(1 + D(G(z))), L_G = -E D(G(z))."""
    def hinge(real_out, fake_out):
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()
    return GANLoss(outputs_loss(hinge), lambda D, fake, real: wgan_generator_loss(D(fake)), critic=True)


def matching_aware_loss(n_classes=10, real_label=1.0):
    """A conditional GAN's `GANLoss` with the matching-aware D of GAN-CLS (Reed et al. 2016): besides
    real images with their labels and fakes, D learns that a real image with a wrong label is fake,
    so it must read the label, and G must draw the class it is asked for:
        L_D = -log D(x, y) - 1/2 [log(1 - D(x, y')) + log(1 - D(G(z, y), y))],  y' a random other label;
        L_G = -log D(G(z, y), y)  (non-saturating).
    D must come bound to the batch's labels, as `train_gan` binds it for (images, labels) batches."""
    _check_int("n_classes", n_classes, 2, " (a wrong label needs another class)")
    def d_loss(D, real, fake):
        if not hasattr(D, "y"):
            raise TypeError("matching_aware_loss is for conditional GANs: train on (images, labels) batches, "
                            "e.g. gan_utils.TensorBatches(images, 128, labels=labels)")
        wrong = (D.y + torch.randint(1, n_classes, D.y.shape, device=D.y.device)) % n_classes
        real_out, fake_out, mismatch = D(real), D(fake), D.model(real, wrong)
        loss = (F.binary_cross_entropy_with_logits(real_out, torch.full_like(real_out, real_label))
                + 0.5 * F.binary_cross_entropy_with_logits(mismatch, torch.zeros_like(mismatch))
                + 0.5 * F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out)))
        return loss, real_out, fake_out
    return GANLoss(d_loss, lambda D, fake, real: generator_loss_nonsaturating(D(fake)))
