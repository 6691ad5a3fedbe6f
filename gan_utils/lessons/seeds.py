"""Seed batching: S seeds of a toy GAN trained at once, their MLPs stacked into (S, in, out) weights (one baddbmm
per layer; one Adam over them is S Adams). Seed s draws from its own torch.Generator in a lone run's order, so it
matches a lone run up to rounding, which long runs amplify until they differ as another seed would."""
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.optim.lr_scheduler import LinearLR

from ..data import ToyBatches, sample_mixture_2d
from ..losses import get_loss, r1_loss, wgan_gp_loss, wgan_loss
from ..metrics import mode_metrics
from ..models import MLPDiscriminator, MLPGenerator, spectral_normalize
from ..steps import count_d_steps, generate, make_optimizer
from ..train import train_gan
from ..utils import _check_int


def _raw_weight(linear):
    """The parameter holding a Linear's weight (out, in); under spectral normalization, the original."""
    return linear.parametrizations.weight.original if parametrize.is_parametrized(linear, "weight") else linear.weight


class BatchedMLP(nn.Module):
    """S same-shape MLPs (Linear layers and `activation` only; weights copied) as one: layer l holds weights
    (S, in, out) and biases (S, 1, out), x_{l+1} = activation(x_l @ W_l + b_l), none after the last. Keeps the
    modules' PacGAN `pack` and spectral normalization (per seed). x: (S, N, in) -> (S, N // pack, out)."""

    batch_dims = 2   # (S, N, ...): seeds, then examples (read by the gradient penalties)

    def __init__(self, modules, activation):
        super().__init__()
        layers = [[m for m in module.modules() if isinstance(m, nn.Linear)] for module in modules]
        for module, linears in zip(modules, layers):
            if sum(p.numel() for p in module.parameters()) != sum(p.numel() for m in linears for p in m.parameters()):
                raise ValueError(f"BatchedMLP stacks plain MLPs; {type(module).__name__} has parameters outside "
                                 f"its Linear layers (a norm or minibatch layer?)")
        self.weights = nn.ParameterList(torch.stack([_raw_weight(ls[i]).detach().t() for ls in layers])
                                        for i in range(len(layers[0])))
        self.biases = nn.ParameterList(torch.stack([ls[i].bias.detach()[None] for ls in layers])
                                       for i in range(len(layers[0])))
        self.activation, self.pack = activation, getattr(modules[0], "pack", 1)
        self.spectral = parametrize.is_parametrized(layers[0][0], "weight")
        for i in range(len(layers[0]) if self.spectral else 0):   # power iteration's vectors u: (S, out)
            self.register_buffer(f"u{i}", torch.stack([ls[i].parametrizations.weight[0]._u.detach() for ls in layers]))

    def _weight(self, i):
        w = self.weights[i]
        if not self.spectral:
            return w
        u = getattr(self, f"u{i}")
        with torch.no_grad():
            v = F.normalize(torch.bmm(w, u[:, :, None])[:, :, 0], dim=1)        # (S, in)
            if self.training:
                u = F.normalize(torch.bmm(v[:, None], w)[:, 0], dim=1)          # (S, out)
                getattr(self, f"u{i}").copy_(u)
        sigma = torch.einsum("si,sio,so->s", v, w, u)                           # largest singular value
        return w / sigma[:, None, None]

    def features(self, x):
        """Every layer but the last, activated: (S, N, in) -> (S, N // pack, hidden)."""
        if self.pack > 1:
            x = x.reshape(x.shape[0], x.shape[1] // self.pack, self.pack * x.shape[2])
        for i in range(len(self.weights) - 1):
            x = self.activation(torch.baddbmm(self.biases[i], x, self._weight(i)))
        return x

    def forward(self, x):
        return torch.baddbmm(self.biases[-1], self.features(x), self._weight(len(self.weights) - 1))

    @torch.no_grad()
    def unstack(self, modules):
        """Copy seed s's weights into modules[s] (the modules it was built from, or alike)."""
        for s, module in enumerate(modules):
            linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
            for i, (m, w, b) in enumerate(zip(linears, self.weights, self.biases)):
                _raw_weight(m).copy_(w[s].t())
                m.bias.copy_(b[s, 0])
                if self.spectral:
                    m.parametrizations.weight[0]._u.copy_(getattr(self, f"u{i}")[s])
        return modules


def mixture_sampler(centers, std):
    """A function (n, generator) -> (n, 2) sampling the mixture at `centers` (m, 2, on the generators' device)."""
    return lambda n, generator: sample_mixture_2d(n, centers, std, generator=generator)


def mixture_scores(G, centers, std, seed, n=2500):
    """G's n samples (n, 2) from noise seeded 10,000 + seed, and their `mode_metrics` (centers (m, 2), std)."""
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(10_000 + seed)).to(next(G.parameters()).device)
    samples = generate(G, z).cpu()
    return samples, mode_metrics(samples, centers, std)


def toy_models(seed, device="cpu", pack=1, spectral=False, minibatch=0):
    """Notebook 04's toy (G, D) on device, seeded: MLPs 2 -> 128 x3 -> 2 (ReLU) and -> 1 (LeakyReLU 0.2);
    D variants pack (PacGAN), spectral, minibatch (kernels)."""
    torch.manual_seed(seed)
    G = MLPGenerator(noise_dim=2, out_shape=(2,), widths=(128, 128, 128), norm=None, out=None)
    D = MLPDiscriminator(in_dim=2, widths=(128, 128, 128), minibatch=minibatch, pack=pack)
    return G.to(device), (spectral_normalize(D) if spectral else D).to(device)


def per_seed(loss, seeds):
    """`loss` (a GANLoss, means over seeds) with its gradient multiplied by S = `seeds`, as in a lone run."""
    def scaled(value):
        value.register_hook(lambda grad: grad * seeds)
        return value
    def d_loss(D, real, fake):
        value, real_out, fake_out = loss.d_loss(D, real, fake)
        return scaled(value), real_out, fake_out
    return loss._replace(d_loss=d_loss, g_loss=lambda D, fake, real: scaled(loss.g_loss(D, fake, real)))


def train_seeds(G, D, sample_real, generators, *, steps, opt_g, opt_d, batch_size=256, loss="nonsaturating",
                k=1, callback=None):
    """Train S seeds at once with `train_gan`: G, D `BatchedMLP`s, generators S torch.Generators (seed s draws
    sample_real(batch_size, generators[s]) then 2-d normal noise); loss, k, callback: as in `train_gan`.
    Returns {'loss_d', 'loss_g'}: (steps,) tensors, means over seeds."""
    loss = per_seed(get_loss(loss) if isinstance(loss, str) else loss, len(generators))
    data = ToyBatches(lambda n: torch.stack([sample_real(n, g) for g in generators]), batch_size,
                      count_d_steps(k, steps))                          # (S, batch_size, 2) a batch
    def noise(n):
        return torch.stack([torch.randn(batch_size, 2, generator=g, device=g.device) for g in generators])
    history = train_gan(G, D, data, noise=noise, epochs=1, opt_g=opt_g, opt_d=opt_d, loss=loss, k=k,
                        callback=callback, progress=False)
    return {key: torch.tensor(history[key]) for key in ("loss_d", "loss_g")}


def wgan_critic_steps(step):
    """WGAN's critic steps per G step: 100 for the first 25 G steps and every 500th, else 5."""
    return 100 if step < 25 or step % 500 == 0 else 5


# Notebook 04's tricks; default: non-saturating loss, Adam lr 1e-3 betas (0.5, 0.999), k = 1.
TOY_TRICKS = {
    "GAN": {},
    "label smoothing": {"loss": get_loss("nonsaturating", real_label=0.9)},
    "feature matching": {"loss": "feature_matching"},
    "minibatch discrimination": {"minibatch": 16},
    "TTUR": {"lr_g": 1e-4, "lr_d": 4e-4},
    "PacGAN2": {"pack": 2},
    "PacGAN4": {"pack": 4},
    "spectral norm": {"spectral": True},
    "R1": {"loss": r1_loss(gamma=0.1)},
    "WGAN": {"loss": wgan_loss(clip=0.01), "optimizer": "rmsprop", "lr_g": 5e-5, "k": wgan_critic_steps},
    "WGAN-GP": {"loss": wgan_gp_loss(lam=0.1), "lr_g": 1e-4, "betas": (0.5, 0.9), "k": 5},
}


def trick_optimizers(G, D, trick, lr=1e-3):
    """(opt_g, opt_d) of a trick's 'optimizer' (Adam, 'betas' (0.5, 0.999)), 'lr_g' (`lr`), 'lr_d' (lr_g)."""
    name = trick.get("optimizer", "adam")
    lr_g = trick.get("lr_g", lr)
    kwargs = {"betas": trick.get("betas", (0.5, 0.999))} if name == "adam" else {}
    return (make_optimizer(G, name, lr=lr_g, **kwargs), make_optimizer(D, name, lr=trick.get("lr_d", lr_g), **kwargs))


class EMA:
    """An exponential moving average of G's parameters and buffers, `module`: a copy of G at the first update, then
    lerp(avg, G, 1 - decay) per update, as torch's AveragedModel(get_ema_multi_avg_fn) but counting on the host."""

    def __init__(self, G, decay):
        self.module, self.decay, self.updates = copy.deepcopy(G), decay, 0

    @torch.no_grad()
    def update_parameters(self, G):
        avg, now = [[*m.parameters(), *m.buffers()] for m in (self.module, G)]
        if self.updates == 0:
            torch._foreach_copy_(avg, now)
        else:
            torch._foreach_lerp_(avg, now, 1 - self.decay)
        self.updates += 1


def _run_settings(G, optimizers, steps, settings):
    """(G_out, every_step): G_out is G or its "ema" average; every_step() updates it and the "lr_decay" schedule."""
    averaged = EMA(G, settings["ema"]) if settings.get("ema") else None
    schedules = [LinearLR(opt, 1.0, 0.0, total_iters=steps) for opt in optimizers] if settings.get("lr_decay") else []
    def every_step():
        if averaged is not None:
            averaged.update_parameters(G)
        for schedule in schedules:
            schedule.step()
    return (averaged.module if averaged is not None else G), every_step


def _toy_settings(seeds, centers, steps, record_every, trick):
    """train_toy_seeds' arguments checked: the trick's settings."""
    if isinstance(trick, str) and trick not in TOY_TRICKS:
        raise ValueError(f"unknown trick {trick!r}; choose one of {list(TOY_TRICKS)} or pass a dict of settings")
    settings = TOY_TRICKS[trick] if isinstance(trick, str) else trick
    unknown = set(settings) - {"loss", "optimizer", "lr_g", "lr_d", "betas", "k", "pack", "spectral",
                               "minibatch", "ema", "lr_decay"}
    if unknown:
        raise ValueError(f"unknown trick settings {sorted(unknown)}; see gan_utils.lessons.seeds.TOY_TRICKS")
    for name, value in (("steps", steps), ("record_every", record_every), ("len(seeds)", len(seeds))):
        _check_int(name, value)
    if not torch.is_tensor(centers) or centers.ndim != 2 or centers.shape[1] != 2 or not len(centers):
        raise ValueError(f"centers must be a (modes, 2) tensor of 2-d points, e.g. ring_centers(8), got "
                         f"{tuple(centers.shape) if torch.is_tensor(centers) else type(centers).__name__}")
    if not isinstance(settings.get("lr_decay", False), bool) or not 0 <= settings.get("ema", 0) < 1:
        raise ValueError(f"'lr_decay' must be True or False and 'ema' a decay in (0, 1) such as 0.999, got "
                         f"{settings.get('lr_decay')!r} and {settings.get('ema')!r}")
    return settings


def train_toy_seeds(seeds, centers, std, steps, device="cpu", trick="GAN", batch_size=256, record=None,
                    record_every=1000):
    """`toy_models` with a TOY_TRICKS trick (a name or a dict) on the mixture at `centers` (m, 2), for each seed s (data
    and noise from a Generator seeded s), batched except with minibatch discrimination. record(step, s, G_s) at step
    0 and every `record_every` G steps. Batched only: "ema": d averages G's weights (the average is recorded and
    returned); "lr_decay": lrs go linearly to 0. Returns (Gs, Ds, history {'loss_d', 'loss_g'})."""
    settings = _toy_settings(seeds, centers, steps, record_every, trick)
    variant = {key: settings[key] for key in ("pack", "spectral", "minibatch") if key in settings}
    Gs, Ds = map(list, zip(*(toy_models(s, device, **variant) for s in seeds)))
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    sample = mixture_sampler(centers.to(device), std)
    loss, k = settings.get("loss", "nonsaturating"), settings.get("k", 1)
    if not settings.get("minibatch"):
        G, D = BatchedMLP(Gs, nn.ReLU()), BatchedMLP(Ds, nn.LeakyReLU(0.2))
        opt_g, opt_d = trick_optimizers(G, D, settings)
        G_out, every_step = _run_settings(G, (opt_g, opt_d), steps, settings)
        def callback(step, G, D, history):
            if step > 0:
                every_step()
            if record and step % record_every == 0:
                for s, G_s in enumerate(G_out.unstack(Gs)):
                    record(step, s, G_s)
        callback.every = 1 if {"ema", "lr_decay"} & set(settings) else record_every
        history = train_seeds(G, D, sample, generators, steps=steps, opt_g=opt_g, opt_d=opt_d,
                              batch_size=batch_size, loss=loss, k=k, callback=callback)
        return G_out.unstack(Gs), D.unstack(Ds), history
    if {"ema", "lr_decay"} & set(settings):
        raise ValueError("'ema' and 'lr_decay' need the batched run, which minibatch discrimination does not have")
    d_steps = count_d_steps(k, steps)
    for s, (G, D, gen) in enumerate(zip(Gs, Ds, generators)):
        opt_g, opt_d = trick_optimizers(G, D, settings)
        def callback(step, G, D, history, s=s):
            record(step, s, G)
        callback.every = record_every
        history = train_gan(G, D, ToyBatches(lambda n, gen=gen: sample(n, gen), batch_size, d_steps),
                            noise=lambda n, gen=gen: torch.randn(n, 2, generator=gen, device=gen.device),
                            epochs=1, opt_g=opt_g, opt_d=opt_d, loss=loss, k=k,
                            callback=callback if record else None, progress=False)
    return Gs, Ds, {key: torch.tensor(history[key]) for key in ("loss_d", "loss_g")}
