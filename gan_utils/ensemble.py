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
from torch import nn

from .losses import get_losses
from .models import MLPDiscriminator, MLPGenerator


class BatchedMLP(nn.Module):
    """S MLPs of the same shape evaluated as one. Layer l holds weights (S, in, out) and biases
    (S, 1, out):  x_{l+1} = activation(x_l @ W_l + b_l), no activation after the last layer.
    Built from S modules made of Linear layers (in order) and that activation only, e.g.
    MLPGenerator(norm=None, out=None) with ReLU or MLPDiscriminator() with LeakyReLU(0.2); their
    weights are copied. x: (S, N, in) -> (S, N, out)."""

    def __init__(self, modules, activation):
        super().__init__()
        layers = [[m for m in module.modules() if isinstance(m, nn.Linear)] for module in modules]
        for module, linears in zip(modules, layers):
            if sum(p.numel() for p in module.parameters()) != sum(p.numel() for m in linears for p in m.parameters()):
                raise ValueError(f"BatchedMLP stacks plain MLPs; {type(module).__name__} has parameters outside "
                                 f"its Linear layers (a norm or minibatch layer?)")
        self.weights = nn.ParameterList(torch.stack([ls[i].weight.detach().t() for ls in layers])
                                        for i in range(len(layers[0])))
        self.biases = nn.ParameterList(torch.stack([ls[i].bias.detach()[None] for ls in layers])
                                       for i in range(len(layers[0])))
        self.activation = activation

    def forward(self, x):
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = self.activation(x)
        return x

    @torch.no_grad()
    def unstack(self, modules):
        """Copy seed s's weights into modules[s] (the modules it was built from, or alike)."""
        for s, module in enumerate(modules):
            linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
            for m, w, b in zip(linears, self.weights, self.biases):
                m.weight.copy_(w[s].t())
                m.bias.copy_(b[s, 0])
        return modules


def mixture_sampler(centers, std):
    """A function (n, generator) -> (n, 2): n points of the equal-weight Gaussian mixture at
    `centers` (m, 2), drawn with that torch.Generator, on its device."""
    def sample(n, generator):
        c = centers.to(generator.device)
        idx = torch.randint(len(c), (n,), generator=generator, device=generator.device)
        return c[idx] + std * torch.randn(n, 2, generator=generator, device=generator.device)
    return sample


def toy_models(seed, device="cpu"):
    """The toy GAN of notebook 04, initialized with torch.manual_seed(seed): G 2 -> 128 -> 128 ->
    128 -> 2 (ReLU), D 2 -> 128 -> 128 -> 128 -> 1 (LeakyReLU 0.2). Returns (G, D) on device."""
    torch.manual_seed(seed)
    G = MLPGenerator(noise_dim=2, out_shape=(2,), widths=(128, 128, 128), norm=None, out=None)
    D = MLPDiscriminator(in_dim=2, widths=(128, 128, 128))
    return G.to(device), D.to(device)


def train_seeds(G, D, sample_real, generators, *, steps, batch_size=256, noise_dim=2, lr=1e-3,
                betas=(0.5, 0.999), loss="nonsaturating"):
    """Train S seeds at once: G and D are `BatchedMLP`s of S models, generators S torch.Generators.
    Per step, as `d_step` then `g_step` for one seed: seed s draws a real batch sample_real(
    batch_size, generators[s]), the D step's noise, then the G step's noise (standard normal).
    loss: a name of `get_losses` or a GANLoss whose d_loss and g_loss are means over examples
    (not feature matching); it is multiplied by S so that each seed gets its own mean's gradient.
    Adam(lr, betas) for both. Returns {'loss_d', 'loss_g'}: (steps,) tensors, means over seeds."""
    loss = get_losses(loss) if isinstance(loss, str) else loss
    S = len(generators)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)

    def noise():
        return torch.stack([torch.randn(batch_size, noise_dim, generator=g, device=g.device) for g in generators])

    losses_d, losses_g = [], []
    for _ in range(steps):
        real = torch.stack([sample_real(batch_size, g) for g in generators])   # (S, batch_size, 2)
        with torch.no_grad():
            fake = G(noise())
        loss_d = loss.d_loss(D, real, fake)[0]
        opt_d.zero_grad(set_to_none=True)
        (S * loss_d).backward()
        opt_d.step()
        loss_g = loss.g_loss(D, G(noise()), real)
        opt_g.zero_grad(set_to_none=True)
        (S * loss_g).backward()
        opt_g.step()
        losses_d.append(loss_d.detach())
        losses_g.append(loss_g.detach())
    return {"loss_d": torch.stack(losses_d).cpu(), "loss_g": torch.stack(losses_g).cpu()}


def train_toy_seeds(seeds, centers, std, steps, device="cpu", **kwargs):
    """The toy GAN (`toy_models`) on the mixture at `centers` for each seed, all batched: seed s is
    initialized with torch.manual_seed(s) and draws its data and noise from a torch.Generator
    seeded with s. kwargs: those of `train_seeds`. Returns (Gs, Ds, history): lists of trained
    MLPGenerator / MLPDiscriminator, one per seed, and train_seeds' history."""
    models = [toy_models(s, device) for s in seeds]
    Gs, Ds = [m[0] for m in models], [m[1] for m in models]
    G, D = BatchedMLP(Gs, nn.ReLU()), BatchedMLP(Ds, nn.LeakyReLU(0.2))
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    history = train_seeds(G, D, mixture_sampler(centers, std), generators, steps=steps, **kwargs)
    return G.unstack(Gs), D.unstack(Ds), history
