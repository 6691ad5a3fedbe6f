"""The course's networks. G: noise (N, noise_dim) -> samples; D: samples -> logits (N, 1), D(x) = sigmoid(logit).
Every D has `features(x)`, its last hidden layer. DCGAN models with n_classes > 0 take labels: G(z, y), D(x, y)."""
import math

import torch
from torch import nn

from .utils import _check_int


def _check_input(model, x, expected, y=None):
    """Raise a clear error unless x is a batch of `expected` values per example of the model's dtype (no sync)."""
    who, dtype = type(model).__name__, next(model.parameters()).dtype
    if y is not None:
        raise ValueError(f"{who} takes no labels: a conditional GAN needs DCGAN models built with n_classes=10")
    if x.ndim < 2 or math.prod(x.shape[1:]) != expected:
        raise ValueError(f"{who} expects a batch of shape (N, {expected}) (or images with {expected} "
                         f"values each), got {tuple(x.shape)}; check noise_dim / data_dim")
    if x.dtype != dtype:
        raise ValueError(f"{who} has {dtype} weights but got a {x.dtype} batch: pass x.to({dtype}) (numpy gives "
                         f"float64), or convert the model")


class VirtualBatchNorm(nn.Module):
    """Virtual batch norm (Salimans et al. 2016): each x normalized with the statistics of a fixed reference batch plus
    x itself; the n_ref reference rows come first (their own statistics). (N, num_features) -> (N, num_features)."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.eps, self.n_ref = eps, 0

    def forward(self, x):
        if self.n_ref == 0:
            raise RuntimeError("VirtualBatchNorm needs a reference batch: call the generator's "
                               "set_reference(z_ref) once before training")
        ref, cur = x[:self.n_ref], x[self.n_ref:]
        ref_sum, ref_sq_sum = ref.sum(0), (ref ** 2).sum(0)
        n = self.n_ref
        ref_out = (ref - ref_sum / n) / torch.sqrt(ref_sq_sum / n - (ref_sum / n) ** 2 + self.eps)
        mean = (ref_sum + cur) / (n + 1)
        var = (ref_sq_sum + cur ** 2) / (n + 1) - mean ** 2
        cur_out = (cur - mean) / torch.sqrt(var + self.eps)
        return self.gamma * torch.cat([ref_out, cur_out]) + self.beta


class MLPGenerator(nn.Module):
    """G(z): blocks of (Linear, norm, ReLU) of the given widths, then Linear and an output layer; the default is
    the course's MNIST generator (toys: norm=None, out=None). norm: 'batch', 'virtual' (call `set_reference`
    first) or None. out: 'sigmoid' ([0, 1]), 'tanh' ([-1, 1]) or None. z: (N, noise_dim) -> (N, *out_shape)."""

    def __init__(self, noise_dim=64, out_shape=(1, 28, 28), widths=(128, 256, 512, 1024), norm="batch", out="sigmoid"):
        super().__init__()
        if norm not in ("batch", "virtual", None):
            raise ValueError(f"norm must be 'batch', 'virtual' or None, got {norm!r}")
        if out not in ("sigmoid", "tanh", None):
            raise ValueError(f"out must be 'sigmoid', 'tanh' or None, got {out!r}")
        self.noise_dim, self.out_shape = noise_dim, tuple(out_shape)
        layers, d = [], noise_dim
        for w in widths:
            layers.append(nn.Linear(d, w))
            if norm is not None:
                layers.append(nn.BatchNorm1d(w) if norm == "batch" else VirtualBatchNorm(w))
            layers.append(nn.ReLU())
            d = w
        layers.append(nn.Linear(d, math.prod(self.out_shape)))
        if out is not None:
            layers.append(nn.Sigmoid() if out == "sigmoid" else nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.register_buffer("z_ref", None)

    def set_reference(self, z_ref):
        """Fix the reference batch of virtual batch norm (z_ref: (R, noise_dim))."""
        self.z_ref = z_ref.detach().clone()
        for m in self.modules():
            if isinstance(m, VirtualBatchNorm):
                m.n_ref = len(z_ref)

    def forward(self, z, y=None):
        _check_input(self, z, self.noise_dim, y)
        if self.z_ref is not None:  # virtual batch norm: reference rows go first, then dropped
            return self.net(torch.cat([self.z_ref, z]))[len(self.z_ref):].view(-1, *self.out_shape)
        return self.net(z).view(-1, *self.out_shape)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016): M_i = x_i T, (kernels, kernel_dim) per example; o(x_i)_b = sum_j
    exp(-||M_i,b - M_j,b||_1) over the batch, x_i included. [x, o(x)]: (N, in_features) -> (N, in_features+kernels)."""

    def __init__(self, in_features, kernels=16, kernel_dim=8):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(0.1 * torch.randn(in_features, kernels * kernel_dim))

    def forward(self, x):
        m = (x @ self.T).view(-1, self.kernels, self.kernel_dim).transpose(0, 1)   # (B, N, C)
        l1 = torch.cdist(m, m, p=1)                                    # (B, N, N): ||M_i,b - M_j,b||_1
        return torch.cat([x, torch.exp(-l1).sum(2).t()], dim=1)


class MLPDiscriminator(nn.Module):
    """D(x): flatten, blocks of (Linear, LeakyReLU(0.2)), then Linear to one logit (no sigmoid: also a WGAN critic).
    minibatch > 0: that many `MinibatchDiscrimination` kernels before the last Linear. pack > 1 (PacGAN): D judges
    groups of `pack` consecutive samples. x: (N, in_dim) or images with in_dim values -> logits (N // pack, 1)."""

    def __init__(self, in_dim=784, widths=(512, 256, 128), minibatch=0, pack=1):
        super().__init__()
        self.in_dim, self.pack = in_dim, pack
        layers, d = [nn.Flatten()], in_dim * pack
        for w in widths:
            layers += [nn.Linear(d, w), nn.LeakyReLU(0.2)]
            d = w
        self.body = nn.Sequential(*layers)
        self.minibatch = MinibatchDiscrimination(d, minibatch) if minibatch else None
        self.head = nn.Linear(d + minibatch, 1)

    def features(self, x, y=None):
        """The last hidden layer, (N // pack, widths[-1])."""
        _check_input(self, x, self.in_dim, y)
        if len(x) % self.pack:
            raise ValueError(f"a packed D (pack={self.pack}) needs a batch size that is a multiple of "
                             f"{self.pack}, got {len(x)}")
        return self.body(x.reshape(len(x) // self.pack, self.pack * self.in_dim))

    def forward(self, x, y=None):
        h = self.features(x, y)
        return self.head(h if self.minibatch is None else self.minibatch(h))


def spectral_normalize(model, n_power_iterations=1):
    """Spectral normalization (Miyato et al. 2018) of every Linear and Conv2d of `model`, in place: W / sigma(W),
    sigma estimated by n_power_iterations of power iteration per training forward. Returns the model."""
    for module in list(model.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(module, n_power_iterations=n_power_iterations)
    return model


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): h_i = max_j (W_ij x + b_ij), j = 1..pieces; (N, in_dim) -> (N, out_dim)"""

    def __init__(self, in_dim, out_dim, pieces=5):
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.out_dim, self.pieces).max(dim=2).values


class MaxoutDiscriminator(nn.Module):
    """The MNIST D of Goodfellow et al. 2014: two layers of 240 maxout units (5 pieces), dropout 0.2 on the input
    and 0.5 on hidden layers, then one logit. x: (N, in_dim) or images -> (N, 1)."""

    def __init__(self, in_dim=784, units=240, pieces=5, dropout_in=0.2, dropout=0.5):
        super().__init__()
        self.in_dim = in_dim
        self.body = nn.Sequential(nn.Flatten(), nn.Dropout(dropout_in), Maxout(in_dim, units, pieces),
                                  nn.Dropout(dropout), Maxout(units, units, pieces), nn.Dropout(dropout))
        self.head = nn.Linear(units, 1)

    def features(self, x, y=None):
        """The second maxout layer, (N, units)."""
        _check_input(self, x, self.in_dim, y)
        return self.body(x)

    def forward(self, x, y=None):
        return self.head(self.features(x, y))


def dcgan_init(module):
    """DCGAN init: conv weights ~ N(0, 0.02^2), BatchNorm gamma ~ N(1, 0.02^2), beta = 0. model.apply(dcgan_init)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _dcgan_sizes(image_size):
    """Start size and number of stride-2 layers: 28 = 7*2*2, 32 = 4*2^3, 64 = 4*2^4."""
    if image_size == 28:
        return 7, 2
    if image_size in (32, 64):
        return 4, int(math.log2(image_size // 4))
    raise ValueError(f"image_size must be 28, 32 or 64, got {image_size}")


def check_labels(y, n, n_classes, who, values=None):
    """Raise a clear error unless y fits a model built with n_classes (0: unconditional) and a batch of n. values:
    check y's range too, a host sync on a GPU: by default on the CPU only (TensorBatches and generate check once)."""
    if n_classes == 0:
        if y is not None:
            raise ValueError(f"{who} was built without labels (n_classes=0): call it without y, "
                             f"or build it with n_classes=10 for a conditional GAN")
        return
    if y is None:
        raise ValueError(f"{who} was built with n_classes={n_classes}: pass the labels too, "
                         f"model(inputs, y) with y an int64 tensor of shape (N,)")
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32, torch.uint8) or y.ndim != 1 or len(y) != n:
        got = f"{y.dtype} {tuple(y.shape)}" if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"{who}: labels y must be an integer tensor (int64, int32 or uint8) of shape ({n},), one "
                         f"class index per example (e.g. torch.tensor(labels).long()), got {got}")
    if (y.device.type == "cpu" if values is None else values) and len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{who}: labels must be class indices in [0, {n_classes}), got values from "
                         f"{int(y.min())} to {int(y.max())}")


class DCGANGenerator(nn.Module):
    """DCGAN generator: a transposed conv to a small map, then stride-2 transposed convs (kernel 4) with BatchNorm +
    ReLU, Tanh output in [-1, 1] (pixels='-11') or (Tanh + 1) / 2 in [0, 1] (pixels='01'). upsample=True: nearest
    upsampling + 3x3 conv instead (no checkerboard, Odena et al. 2016). n_classes > 0: a label embedding (embed_dim)
    concatenated to z. z: (N, noise_dim), y: int64 (N,) in [0, n_classes) -> (N, channels, image_size, image_size)."""

    def __init__(self, noise_dim=100, channels=1, image_size=28, width=64, upsample=False, n_classes=0,
                 embed_dim=50, pixels="-11"):
        super().__init__()
        if pixels not in ("-11", "01"):
            raise ValueError(f"pixels must be '-11' (Tanh, data in [-1, 1]) or '01' (data in [0, 1]), got {pixels!r}")
        start, n_up = _dcgan_sizes(image_size)
        n_classes = _check_int("DCGANGenerator: n_classes", n_classes, 0, " (0: unconditional, 10 for digits)")
        self.pixels, self.noise_dim, self.n_classes = pixels, noise_dim, n_classes
        self.embed = nn.Embedding(n_classes, embed_dim) if n_classes else None
        c = width * 2 ** (n_up - 1) if n_up > 1 else width
        c_in = noise_dim + (embed_dim if n_classes else 0)
        layers = [nn.ConvTranspose2d(c_in, c, start, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for i in range(n_up):
            last = i == n_up - 1
            c_out = channels if last else c // 2
            if upsample:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c_out, 3, 1, 1, bias=last)]
            else:
                layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU(True)]
            c = c_out
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z, y=None):
        _check_input(self, z, self.noise_dim)
        check_labels(y, len(z), self.n_classes, "DCGANGenerator")
        h = z.reshape(len(z), self.noise_dim)
        if self.embed is not None:
            h = torch.cat([h, self.embed(y.long())], dim=1)
        x = self.net(h[:, :, None, None])
        return (x + 1) / 2 if self.pixels == "01" else x


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 convs (kernel 4), LeakyReLU(0.2), a norm on every layer but the first, then one
    conv to a logit. norm: 'batch', 'layer' (GroupNorm(1, c); for WGAN-GP) or None. n_classes > 0: conditioning=
    'projection' (Miyato & Koyama 2018), logit + <embed(y), features(x)>, or 'concat', a learned image-sized map per
    class as one more input channel. minibatch > 0: that many minibatch-discrimination kernels on the last features,
    added linearly to the logit. x: (N, channels, image_size, image_size), y: int64 (N,) in [0, n_classes) -> (N, 1)."""

    def __init__(self, channels=1, image_size=28, width=64, norm="batch", n_classes=0, conditioning="projection",
                 minibatch=0):
        super().__init__()
        if norm not in ("batch", "layer", None):
            raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
        if conditioning not in ("projection", "concat"):
            raise ValueError(f"conditioning must be 'projection' or 'concat', got {conditioning!r}")
        start, n_down = _dcgan_sizes(image_size)
        n_classes = _check_int("DCGANDiscriminator: n_classes", n_classes, 0, " (0: unconditional, 10 for digits)")
        self.in_shape = (channels, image_size, image_size)
        concat = bool(n_classes) and conditioning == "concat"
        layers, c_in, c = [], channels + concat, width
        for i in range(n_down):
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1, bias=False))
            if i > 0 and norm is not None:
                layers.append(nn.BatchNorm2d(c) if norm == "batch" else nn.GroupNorm(1, c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, c = c, c * 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, 1, start, 1, 0)
        self.n_classes = n_classes
        self.embed = nn.Embedding(n_classes, c_in * start * start) if n_classes and not concat else None
        self.label_map = nn.Embedding(n_classes, image_size * image_size) if concat else None
        self.minibatch = MinibatchDiscrimination(c_in * start * start, minibatch) if minibatch else None
        self.minibatch_head = nn.Linear(minibatch, 1) if minibatch else None
        self.apply(dcgan_init)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x, y=None):
        """The last feature map, flattened: (N, C * start * start). A 'concat' D needs the labels y."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"DCGANDiscriminator expects images of shape (N, {', '.join(map(str, self.in_shape))}), "
                             f"got {tuple(x.shape)}")
        if self.label_map is not None:
            check_labels(y, len(x), self.n_classes, "DCGANDiscriminator")
            x = torch.cat([x, self.label_map(y.long()).view(len(x), 1, *x.shape[2:])], dim=1)
        return self.body(x).flatten(1)

    def forward(self, x, y=None):
        check_labels(y, len(x), self.n_classes, "DCGANDiscriminator")
        h = self.features(x, y)
        c = h.shape[1] // (self.head.kernel_size[0] ** 2)
        logit = self.head(h.view(len(x), c, *self.head.kernel_size)).view(-1, 1)
        if self.minibatch is not None:
            logit = logit + self.minibatch_head(self.minibatch(h)[:, h.shape[1]:])
        if self.embed is None:
            return logit
        return logit + (self.embed(y.long()) * h).sum(dim=1, keepdim=True)
