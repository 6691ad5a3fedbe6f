"""Seed batching: many seeds of a small GAN trained at once, as one batched model.

A toy GAN is too small to keep a CPU busy: a Python loop over seeds pays the per-operation
overhead of PyTorch once per seed. Here the S seeds' MLPs are stacked, layer l's weights into one
(S, in, out) tensor, and a batch of shape (S, N, in) goes through all of them with one batched
matrix product (torch.baddbmm) per layer. Adam works elementwise, so one Adam over the stacked
weights is S independent Adams. Each seed draws its data and noise from its own torch.Generator,
in the order a lone run draws them, so seed s trained with others gives the same G and D as seed
s trained alone, up to the rounding of the batched products. Over hundreds of steps Adam and the
game amplify those last bits (a gradient that is a nearly cancelling sum gets an O(1) different
m / sqrt(v)), and a long batched run then differs from the lone one as another seed would.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .data import ToyBatches
from .losses import clip_weights, get_losses, r1_loss, wgan_gp_loss
from .metrics import mode_metrics
from .models import MLPDiscriminator, MLPGenerator, spectral_normalize
from .train import _k_schedule, generate, make_optimizer, train_gan


def _raw_weight(linear):
    """The parameter that holds a Linear's weight (out, in): under spectral normalization, the
    un-normalized original."""
    if parametrize.is_parametrized(linear, "weight"):
        return linear.parametrizations.weight.original
    return linear.weight


class BatchedMLP(nn.Module):
    """S MLPs of the same shape evaluated as one. Layer l holds weights (S, in, out) and biases
    (S, 1, out):  x_{l+1} = activation(x_l @ W_l + b_l), no activation after the last layer.
    Built from S modules made of Linear layers (in order) and that activation only, e.g.
    MLPGenerator(norm=None, out=None) with ReLU or MLPDiscriminator() with LeakyReLU(0.2); their
    weights are copied. It keeps two D variants of the modules: PacGAN packing (a module with
    `pack` = p > 1 judges p consecutive samples at once) and spectral normalization (modules
    passed through `spectral_normalize`: each weight is divided by its largest singular value,
    estimated by one power iteration per forward pass in training mode, per seed).
    x: (S, N, in) -> (S, N // pack, out)."""

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
    """A function (n, generator) -> (n, 2): n points of the equal-weight Gaussian mixture at
    `centers` (m, 2), drawn with that torch.Generator, on its device."""
    def sample(n, generator):
        c = centers.to(generator.device)
        idx = torch.randint(len(c), (n,), generator=generator, device=generator.device)
        return c[idx] + std * torch.randn(n, 2, generator=generator, device=generator.device)
    return sample


def mixture_scores(G, centers, std, seed, n=2500):
    """G's n samples from the fixed noise of `seed` (a torch.Generator seeded 10,000 + seed) and
    their `metrics.mode_metrics` on the mixture (centers (m, 2), std): (samples (n, 2), dict)."""
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(10_000 + seed)).to(next(G.parameters()).device)
    samples = generate(G, z).cpu()
    return samples, mode_metrics(samples, centers, std)


def toy_models(seed, device="cpu", pack=1, spectral=False, minibatch=0):
    """The toy GAN of notebook 04, initialized with torch.manual_seed(seed): G 2 -> 128 -> 128 ->
    128 -> 2 (ReLU), D 2 -> 128 -> 128 -> 128 -> 1 (LeakyReLU 0.2). D variants: pack (PacGAN),
    spectral (spectral normalization), minibatch (kernels of minibatch discrimination).
    Returns (G, D) on device."""
    torch.manual_seed(seed)
    G = MLPGenerator(noise_dim=2, out_shape=(2,), widths=(128, 128, 128), norm=None, out=None)
    D = MLPDiscriminator(in_dim=2, widths=(128, 128, 128), minibatch_kernels=minibatch, pack=pack)
    return G.to(device), (spectral_normalize(D) if spectral else D).to(device)


def train_seeds(G, D, sample_real, generators, *, steps, opt_g, opt_d, batch_size=256, noise_dim=2,
                loss="nonsaturating", k=1, clip_value=None, callback=None, callback_every=1000):
    """Train S seeds at once, as `train_gan` trains one: G and D are `BatchedMLP`s of S models,
    generators S torch.Generators, opt_g / opt_d optimizers of G's and D's stacked parameters.
    Per D step seed s draws a real batch sample_real(batch_size, generators[s]) then the noise of
    its fakes; the G step after k D steps draws fresh noise (standard normal). loss: a name of
    `get_losses` or a GANLoss whose d_loss and g_loss are means over seeds; it is multiplied by S
    so that each seed gets the gradient of its own mean. k: an int or a function of the G step;
    clip_value: WGAN's weight clipping after each D step. callback(step, G, D) runs before
    training and every `callback_every` G steps. Returns {'loss_d', 'loss_g'}: (steps,) tensors,
    means over seeds."""
    loss = get_losses(loss) if isinstance(loss, str) else loss
    S, k_at = len(generators), _k_schedule(k, k if isinstance(k, int) else 1)

    def noise():
        return torch.stack([torch.randn(batch_size, noise_dim, generator=g, device=g.device) for g in generators])

    losses_d, losses_g = [], []
    if callback is not None:
        callback(0, G, D)
    for step in range(steps):
        for _ in range(k_at(step)):
            real = torch.stack([sample_real(batch_size, g) for g in generators])   # (S, batch_size, 2)
            with torch.no_grad():
                fake = G(noise())
            loss_d = loss.d_loss(D, real, fake)[0]
            opt_d.zero_grad(set_to_none=True)
            (S * loss_d).backward()
            opt_d.step()
            if clip_value is not None:             # WGAN: keep the critic's weights in [-c, c]
                clip_weights(D, clip_value)
        loss_g = loss.g_loss(D, G(noise()), real)
        opt_g.zero_grad(set_to_none=True)
        (S * loss_g).backward()
        opt_g.step()
        losses_d.append(loss_d.detach())
        losses_g.append(loss_g.detach())
        if callback is not None and (step + 1) % callback_every == 0:
            callback(step + 1, G, D)
    return {"loss_d": torch.stack(losses_d).cpu(), "loss_g": torch.stack(losses_g).cpu()}


def wgan_k(step):
    """The WGAN reference code's critic steps per G step: 100 for the first 25 G steps and every
    500th, else 5 (a near-optimal critic now and then)."""
    return 100 if step < 25 or step % 500 == 0 else 5


# The tricks of notebook 04 on the toy GAN. Unless a trick says otherwise: the non-saturating
# loss, Adam lr 1e-3 with betas (0.5, 0.999) for both players, one D step per G step.
# Starting points from each trick's reference code (see notebook 04); a trick that is D itself
# changes D: pack (PacGAN), spectral, minibatch (kernels; not batched, each seed runs alone).
TOY_TRICKS = {
    "GAN": {},
    "label smoothing": {"loss": get_losses("nonsaturating", real_label=0.9)},
    "feature matching": {"loss": "feature_matching"},
    "minibatch discrimination": {"minibatch": 16},
    "TTUR": {"lr": 1e-4, "lr_d": 4e-4},
    "PacGAN2": {"pack": 2},
    "PacGAN4": {"pack": 4},
    "spectral norm": {"spectral": True},
    "R1": {"loss": r1_loss(gamma=0.1)},
    "WGAN": {"loss": "wgan", "optimizer": "rmsprop", "lr": 5e-5, "k": wgan_k, "clip_value": 0.01},
    "WGAN-GP": {"loss": wgan_gp_loss(lam=0.1), "lr": 1e-4, "betas": (0.5, 0.9), "k": 5},
}


def _optimizers(G, D, trick):
    name = trick.get("optimizer", "adam")
    lr = trick.get("lr", 1e-3)
    kwargs = {"betas": trick.get("betas", (0.5, 0.999))} if name == "adam" else {}
    return (make_optimizer(G, name, lr=lr, **kwargs),
            make_optimizer(D, name, lr=trick.get("lr_d", lr), **kwargs))


def _run_settings(G, optimizers, steps, settings):
    """The run-long settings of a toy trick: (G_out, every_step). G_out is G, or with "ema": d the
    running average of G's weights (torch.optim.swa_utils.AveragedModel; G_out.module is a
    BatchedMLP); every_step() runs after each G step: it updates the average and, with
    "lr_decay", steps a linear schedule of both optimizers to lr 0 at `steps`."""
    from torch.optim.lr_scheduler import LinearLR
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    averaged = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(settings["ema"]), use_buffers=True) \
        if settings.get("ema") else None
    schedules = [LinearLR(opt, 1.0, 0.0, total_iters=steps) for opt in optimizers] \
        if settings.get("lr_decay") else []

    def every_step():
        if averaged is not None:
            averaged.update_parameters(G)
        for schedule in schedules:
            schedule.step()
    return (averaged.module if averaged is not None else G), every_step


def train_toy_seeds(seeds, centers, std, steps, device="cpu", trick="GAN", batch_size=256, record=None,
                    record_every=1000):
    """The toy GAN (`toy_models`) with a trick of TOY_TRICKS (a name or such a dict) on the mixture
    at `centers`, for each seed: seed s is initialized with torch.manual_seed(s) and draws its data
    and noise from a torch.Generator seeded with s. All seeds train as one batched model, except
    with minibatch discrimination (each seed alone through `train_gan`, same random numbers).
    record(step, s, G_s) sees each seed's generator (an MLPGenerator) at step 0 and every
    `record_every` G steps. Two settings act on the whole run rather than on a step (batched runs
    only): "ema": d keeps an exponential moving average of G's weights, G_avg <- d G_avg + (1 - d) G
    after every G step (Yazici et al. 2019), and the averaged G is the one recorded and returned;
    "lr_decay": True lowers both learning rates linearly to 0 over the `steps`.
    Returns (Gs, Ds, history): lists of trained generators and discriminators, one per seed, and
    the history (train_seeds'; losses of the last seed when seeds run alone)."""
    settings = TOY_TRICKS[trick] if isinstance(trick, str) else trick
    unknown = set(settings) - {"loss", "optimizer", "lr", "lr_d", "betas", "k", "clip_value", "pack", "spectral",
                               "minibatch", "ema", "lr_decay"}
    if unknown:
        raise ValueError(f"unknown trick settings {sorted(unknown)}; see gan_utils.ensemble.TOY_TRICKS")
    variant = {key: settings[key] for key in ("pack", "spectral", "minibatch") if key in settings}
    models = [toy_models(s, device, **variant) for s in seeds]
    Gs, Ds = [m[0] for m in models], [m[1] for m in models]
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    sample = mixture_sampler(centers, std)
    loss = settings.get("loss", "nonsaturating")
    k, clip_value = settings.get("k", 1), settings.get("clip_value")
    if not settings.get("minibatch"):
        G, D = BatchedMLP(Gs, nn.ReLU()), BatchedMLP(Ds, nn.LeakyReLU(0.2))
        opt_g, opt_d = _optimizers(G, D, settings)
        G_out, every_step = _run_settings(G, (opt_g, opt_d), steps, settings)

        def callback(step, G, D):
            if step > 0:
                every_step()
            if record and step % record_every == 0:
                for s, G_s in enumerate(G_out.unstack(Gs)):
                    record(step, s, G_s)
        history = train_seeds(G, D, sample, generators, steps=steps, opt_g=opt_g, opt_d=opt_d,
                              batch_size=batch_size, loss=loss, k=k, clip_value=clip_value, callback=callback,
                              callback_every=1 if {"ema", "lr_decay"} & set(settings) else record_every)
        return G_out.unstack(Gs), D.unstack(Ds), history
    if {"ema", "lr_decay"} & set(settings):
        raise ValueError("'ema' and 'lr_decay' need the batched run, which minibatch discrimination does not have")
    d_steps = sum(_k_schedule(k, k if isinstance(k, int) else 1)(step) for step in range(steps))
    for s, (G, D, gen) in enumerate(zip(Gs, Ds, generators)):
        opt_g, opt_d = _optimizers(G, D, settings)
        callback = (lambda step, G, D, history, s=s: record(step, s, G)) if record else None
        history = train_gan(G, D, ToyBatches(lambda n, gen=gen: sample(n, gen), batch_size, d_steps),
                            noise=lambda n, gen=gen: torch.randn(n, 2, generator=gen, device=gen.device),
                            epochs=1, opt_g=opt_g, opt_d=opt_d, loss=loss, k=k, clip_value=clip_value,
                            callback=callback, callback_every=record_every, progress=False)
    return Gs, Ds, {key: torch.tensor(history[key]) for key in ("loss_d", "loss_g")}
