"""The two steps of Algorithm 1 of Goodfellow et al. 2014, and what they need.

    for each training iteration:
        for k steps:  sample m noise samples z and m examples x;
                      update D by ascending  1/m sum [log D(x) + log(1 - D(G(z)))]
        sample m noise samples z;
                      update G by descending 1/m sum log(1 - D(G(z)))   (or another G loss)
"""
import torch

from .losses import clip_weights
from .models import check_labels
from .utils import _check_int

MAX_LR = 10.0  # far above any GAN learning rate; beyond it float32 updates overflow or explode


def make_optimizer(model, name="adam", lr=2e-4, **kwargs):
    """Adam (default betas (0.5, 0.999), as in DCGAN), 'rmsprop' (WGAN) or 'sgd' over model's parameters."""
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and 0 < lr <= MAX_LR):
        raise ValueError(f"the learning rate must be a positive number such as 2e-4, at most {MAX_LR}, got {lr!r}")
    if name == "adam":
        kwargs["betas"] = tuple(float(b) for b in kwargs.get("betas", (0.5, 0.999)))  # (0, 0.9) works too
        return torch.optim.Adam(model.parameters(), lr=lr, **kwargs)
    if name == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=lr, **kwargs)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, **kwargs)
    raise ValueError(f"unknown optimizer {name!r}; use 'adam', 'rmsprop' or 'sgd'")


@torch.no_grad()
def generate(G, z, y=None):
    """G's samples, z: (N, noise_dim) -> (N, ...), in evaluation mode (BatchNorm's running statistics), no graph; G goes
    back to its mode, also when it raises. y: (N,) int64 labels of a conditional G (G(z, y), checked once) or None."""
    if y is not None and getattr(G, "n_classes", 0):
        check_labels(y, len(z), G.n_classes, type(G).__name__, values=True)
    was_training = G.training
    G.eval()
    try:
        return G(z) if y is None else G(z, y)
    finally:
        G.train(was_training)


def d_step(G, D, opt_d, real, noise, loss):
    """One discriminator update of Algorithm 1: ascend log D(x) + log(1 - D(G(z))), i.e. descend
    loss.d_loss. real: (m, ...) a minibatch of data; noise: n -> (n, noise_dim); loss: a GANLoss.
    Returns the detached (loss_d, real_out, fake_out): a scalar and D's raw outputs (m, 1)."""
    with torch.no_grad():                 # no gradient flows into G
        fake = G(noise(len(real)))
    if fake.shape[1:] != real.shape[1:]:
        got, want = tuple(fake.shape[1:]), tuple(real.shape[1:])
        raise ValueError(f"G makes samples of shape {got} but the data"
                         f" has shape {want}: make G's output fit it")
    loss_d, real_out, fake_out = loss.d_loss(D, real, fake)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    if loss.clip is not None:             # WGAN: clamp D's weights
        clip_weights(D, loss.clip)
    return loss_d.detach(), real_out.detach(), fake_out.detach()


def g_step(G, D, opt_g, real, noise, loss):
    """One generator update of Algorithm 1: descend loss.g_loss on a fresh fake batch (the
    non-saturating loss ascends log D(G(z))). The gradient flows back through D to G, but only
    G's parameters get gradients: D's weight gradients would be thrown away by the next d_step.
    real: (m, ...), used by feature matching. Returns loss_g, detached."""
    loss_g = loss.g_loss(D, G(noise(len(real))), real)
    opt_g.zero_grad(set_to_none=True)
    params = [p for p in G.parameters() if p.requires_grad]
    loss_g.backward(inputs=params)       # gradients for G only
    opt_g.step()
    return loss_g.detach()


def eager_steps(G, D, opt_g, opt_d, noise, loss, real_example=None):
    """The steps `train_gan` calls: (d_fn, g_fn), d_fn(real, G, D) -> d_step(G, D, opt_d, real, noise, loss) and
    g_fn(real, G, D) -> g_step(G, D, opt_g, real, noise, loss). `fast.fast_steps` has the same contract."""
    return (lambda real, G, D: d_step(G, D, opt_d, real, noise, loss),
            lambda real, G, D: g_step(G, D, opt_g, real, noise, loss))


def k_schedule(k, batches=None):
    """k, the D steps per G step, as a checked function of the G step (an int or a function step -> int);
    batches: an epoch's batches, at least k."""
    if callable(k):
        def k_at(step):
            return _check_int(f"k({step})", k(step), 1, " (D steps before the next G step)")
        return k_at
    _check_int("k (discriminator steps per generator step)", k, 1, " or a function of the G step")
    if batches is not None and batches < k:
        raise ValueError(f"an epoch has {batches} batches, fewer than k={k}: use more data or a smaller k")
    return lambda step: k


def count_d_steps(k, g_steps):
    """How many D steps `g_steps` G steps take under the k schedule `k` (an int or a function)."""
    k_at = k_schedule(k)
    return sum(k_at(step) for step in range(g_steps))
