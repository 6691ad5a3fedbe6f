"""The course's networks, in plain PyTorch.

Generators map noise z of shape (N, noise_dim) to samples; discriminators map samples to one
logit per example, shape (N, 1): D(x) = sigmoid(logit) is the probability that x is real.
Every discriminator has `features(x)`, its last hidden layer (used by feature matching).
The DCGAN pair takes labels too when built with n_classes > 0: G(z, y), D(x, y).
`conv_matrix` and `overlap_counts` take a convolution apart (notebook 05).
"""
import math

import torch
from torch import nn


def _check_input(x, expected, who):
    """Raise a clear error when a batch does not have the feature size a model expects."""
    if x.ndim < 2 or math.prod(x.shape[1:]) != expected:
        raise ValueError(f"{who} expects a batch of shape (N, {expected}) (or images with {expected} "
                         f"values each), got {tuple(x.shape)}; check noise_dim / data_dim")


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalization (Salimans et al. 2016, Improved Techniques for Training GANs).

    Each example x is normalized with statistics of a fixed reference batch R combined with x:
        mu = (sum_R r + x) / (|R| + 1),   var = (sum_R r^2 + x^2) / (|R| + 1) - mu^2
        y = gamma * (x - mu) / sqrt(var + eps) + beta
    so an example's output does not depend on the other examples of its minibatch. The
    reference batch is chosen once before training; its statistics at this layer come from
    passing it through the network too. The enclosing generator puts the reference rows first
    and sets `n_ref`; those rows are normalized by the reference statistics alone.
    Input and output: (N, num_features).
    """

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
    """G(z): blocks of (Linear, norm, ReLU) of the given widths, then Linear and an output layer.

    The course's MNIST generator is the default: widths (128, 256, 512, 1024), 64-d noise,
    BatchNorm1d, Sigmoid output reshaped to (1, 28, 28). For the toys use norm=None, out=None.
    norm: 'batch', 'virtual' (VirtualBatchNorm, call `set_reference` first) or None.
    out: 'sigmoid' (pixels in [0, 1]), 'tanh' ([-1, 1]) or None (any real number).
    z: (N, noise_dim) -> (N, *out_shape).
    """

    def __init__(self, noise_dim=64, out_shape=(1, 28, 28), widths=(128, 256, 512, 1024),
                 norm="batch", out="sigmoid"):
        super().__init__()
        if norm not in ("batch", "virtual", None):
            raise ValueError(f"norm must be 'batch', 'virtual' or None, got {norm!r}")
        if out not in ("sigmoid", "tanh", None):
            raise ValueError(f"out must be 'sigmoid', 'tanh' or None, got {out!r}")
        self.noise_dim, self.out_shape = noise_dim, tuple(out_shape)
        layers, d = [], noise_dim
        for w in widths:
            layers.append(nn.Linear(d, w))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(w))
            elif norm == "virtual":
                layers.append(VirtualBatchNorm(w))
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

    def forward(self, z):
        _check_input(z, self.noise_dim, "MLPGenerator")
        if self.z_ref is not None:  # virtual batch norm: reference rows go first, then dropped
            return self.net(torch.cat([self.z_ref, z]))[len(self.z_ref):].view(-1, *self.out_shape)
        return self.net(z).view(-1, *self.out_shape)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016): lets D compare an example with the rest of
    its minibatch, so a collapsed G (all samples alike) is easy to spot.
        M_i = x_i T                       (kernels, kernel_dim) per example, T a learned tensor
        c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_1),   o(x_i)_b = sum_j c_b(x_i, x_j)
    The output is [x_i, o(x_i)]: (N, in_features) -> (N, in_features + kernels). The sum runs over
    the whole minibatch, x_i included, as in the paper (it adds 1 to every o)."""

    def __init__(self, in_features, kernels=16, kernel_dim=8):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(0.1 * torch.randn(in_features, kernels * kernel_dim))

    def forward(self, x):
        m = (x @ self.T).view(-1, self.kernels, self.kernel_dim).transpose(0, 1)   # (B, N, C)
        l1 = torch.cdist(m, m, p=1)                                    # (B, N, N): ||M_i,b - M_j,b||_1
        return torch.cat([x, torch.exp(-l1).sum(2).t()], dim=1)


class MLPDiscriminator(nn.Module):
    """D(x): flatten, blocks of (Linear, LeakyReLU(0.2)) of the given widths, then Linear to one
    logit. Default: the course's MNIST discriminator, widths (512, 256, 128) on 784 pixels.
    It has no BatchNorm and no sigmoid, so it also serves as a WGAN / WGAN-GP critic.
    minibatch_kernels > 0: a `MinibatchDiscrimination` layer before the last Linear.
    pack > 1 (PacGAN, Lin et al. 2018): D judges `pack` samples at once, concatenated; the
    batch is cut into consecutive groups, so N must be a multiple of pack.
    x: (N, in_dim) or (N, C, H, W) with C*H*W = in_dim -> logits (N // pack, 1).
    """

    def __init__(self, in_dim=784, widths=(512, 256, 128), slope=0.2, minibatch_kernels=0, pack=1):
        super().__init__()
        self.in_dim, self.pack = in_dim, pack
        layers, d = [nn.Flatten()], in_dim * pack
        for w in widths:
            layers += [nn.Linear(d, w), nn.LeakyReLU(slope)]
            d = w
        self.body = nn.Sequential(*layers)
        self.minibatch = MinibatchDiscrimination(d, minibatch_kernels) if minibatch_kernels else None
        self.head = nn.Linear(d + minibatch_kernels, 1)

    def features(self, x):
        """The last hidden layer, (N // pack, widths[-1])."""
        _check_input(x, self.in_dim, "MLPDiscriminator")
        if len(x) % self.pack:
            raise ValueError(f"a packed D (pack={self.pack}) needs a batch size that is a multiple of "
                             f"{self.pack}, got {len(x)}")
        return self.body(x.reshape(len(x) // self.pack, self.pack * self.in_dim))

    def forward(self, x):
        h = self.features(x)
        return self.head(h if self.minibatch is None else self.minibatch(h))


def spectral_normalize(model, n_power_iterations=1):
    """Spectral normalization (Miyato et al. 2018) of every Linear and Conv2d of `model`, in place:
    W is used as W / sigma(W), sigma the largest singular value, estimated by power iteration
    (n_power_iterations per forward pass in training mode). Each layer is then 1-Lipschitz, and
    so is D when its activations are. Returns the model. Example: spectral_normalize(MLPDiscriminator())."""
    for module in list(model.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(module, n_power_iterations=n_power_iterations)
    return model


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): h_i = max_j (W_ij x + b_ij), j = 1..pieces.
    (N, in_dim) -> (N, out_dim)."""

    def __init__(self, in_dim, out_dim, pieces=5):
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.out_dim, self.pieces).max(dim=2).values


class MaxoutDiscriminator(nn.Module):
    """The MNIST discriminator of Goodfellow et al. 2014 (goodfeli/adversarial, mnist.yaml):
    two layers of 240 maxout units with 5 pieces, dropout (input keeps 80%, hidden 50%),
    then one logit. x: (N, in_dim) or images -> (N, 1)."""

    def __init__(self, in_dim=784, units=240, pieces=5, dropout_in=0.2, dropout=0.5):
        super().__init__()
        self.in_dim = in_dim
        self.body = nn.Sequential(nn.Flatten(), nn.Dropout(dropout_in), Maxout(in_dim, units, pieces),
                                  nn.Dropout(dropout), Maxout(units, units, pieces), nn.Dropout(dropout))
        self.head = nn.Linear(units, 1)

    def features(self, x):
        """The second maxout layer, (N, units)."""
        _check_input(x, self.in_dim, "MaxoutDiscriminator")
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def dcgan_init(module):
    """DCGAN weight init (Radford et al. 2016): conv weights ~ N(0, 0.02^2) (standard
    deviation 0.02), BatchNorm gamma ~ N(1, 0.02^2), beta = 0. Use as `model.apply(dcgan_init)`."""
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


def _check_labels(y, n, n_classes, who):
    """Raise a clear error unless y fits a model built with n_classes (0: unconditional) and a batch of n."""
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
        raise ValueError(f"{who}: labels y must be an integer tensor of shape ({n},), one class index per "
                         f"example (e.g. torch.tensor(labels).long()), got {got}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{who}: labels must be class indices in [0, {n_classes}), got values from "
                         f"{int(y.min())} to {int(y.max())}")


class DCGANGenerator(nn.Module):
    """DCGAN generator: project z to a small feature map with a transposed conv, then stride-2
    transposed convs (kernel 4) that double the size, BatchNorm + ReLU after each but the last,
    Tanh output in [-1, 1] (pixels='-11', for data scaled to [-1, 1]) or (Tanh + 1) / 2 in [0, 1]
    (pixels='01', the course's pixel range, which its classifier and metrics read).
    upsample=True replaces each stride-2 transposed conv by nearest upsampling + 3x3 conv (no checkerboard artifacts, Odena et al. 2016).
    n_classes > 0: a conditional G (Mirza & Osindero 2014); the label's learned embedding
    (embed_dim values) is concatenated to z, and the same conv stack follows.
    z: (N, noise_dim), y: int64 (N,) labels in [0, n_classes) -> (N, channels, image_size, image_size)."""

    def __init__(self, noise_dim=100, channels=1, image_size=28, width=64, upsample=False, n_classes=0,
                 embed_dim=50, pixels="-11"):
        super().__init__()
        if pixels not in ("-11", "01"):
            raise ValueError(f"pixels must be '-11' (Tanh, data in [-1, 1]) or '01' (data in [0, 1]), got {pixels!r}")
        start, n_up = _dcgan_sizes(image_size)
        self.pixels = pixels
        self.noise_dim, self.n_classes = noise_dim, n_classes
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
        _check_input(z, self.noise_dim, "DCGANGenerator")
        _check_labels(y, len(z), self.n_classes, "DCGANGenerator")
        h = z.reshape(len(z), self.noise_dim)
        if self.embed is not None:
            h = torch.cat([h, self.embed(y.long())], dim=1)
        x = self.net(h[:, :, None, None])
        return (x + 1) / 2 if self.pixels == "01" else x


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 convs (kernel 4) that halve the size, LeakyReLU(0.2),
    BatchNorm on every layer but the first, then one conv over the whole small map to a logit.
    norm: 'batch', 'layer' (GroupNorm with one group, per example) or None; a WGAN-GP critic
    needs 'layer' or None, since its penalty treats each example on its own.
    n_classes > 0, conditioning='projection': a projection discriminator (Miyato & Koyama 2018),
    logit(x) + <embed(y), features(x)>, with a learned embedding per class, N(0, 0.02^2) at first like
    the head; conditioning='concat': the label as input (Mirza & Osindero 2014), a learned
    image_size x image_size map per class concatenated to x as one more channel.
    minibatch > 0: that many minibatch-discrimination kernels (Salimans et al. 2016) on the last
    features, their outputs mapped linearly onto the logit: D sees when samples repeat in a batch
    (a conditional G that ignores z draws one image per label).
    x: (N, channels, image_size, image_size), y: int64 (N,) labels in [0, n_classes) -> (N, 1)."""

    def __init__(self, channels=1, image_size=28, width=64, norm="batch", n_classes=0, conditioning="projection",
                 minibatch=0):
        super().__init__()
        if norm not in ("batch", "layer", None):
            raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
        if conditioning not in ("projection", "concat"):
            raise ValueError(f"conditioning must be 'projection' or 'concat', got {conditioning!r}")
        start, n_down = _dcgan_sizes(image_size)
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
        self.mbd = MinibatchDiscrimination(c_in * start * start, minibatch) if minibatch else None
        self.mbd_head = nn.Linear(minibatch, 1) if minibatch else None
        self.apply(dcgan_init)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x, y=None):
        """The last feature map, flattened: (N, C * start * start). A 'concat' D needs the labels y."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"DCGANDiscriminator expects images of shape (N, {', '.join(map(str, self.in_shape))}), "
                             f"got {tuple(x.shape)}")
        if self.label_map is not None:
            _check_labels(y, len(x), self.n_classes, "DCGANDiscriminator")
            x = torch.cat([x, self.label_map(y.long()).view(len(x), 1, *x.shape[2:])], dim=1)
        return self.body(x).flatten(1)

    def forward(self, x, y=None):
        _check_labels(y, len(x), self.n_classes, "DCGANDiscriminator")
        h = self.features(x, y)
        c = h.shape[1] // (self.head.kernel_size[0] ** 2)
        logit = self.head(h.view(len(x), c, *self.head.kernel_size)).view(-1, 1)
        if self.mbd is not None:
            logit = logit + self.mbd_head(self.mbd(h)[:, h.shape[1]:])
        if self.embed is None:
            return logit
        return logit + (self.embed(y.long()) * h).sum(dim=1, keepdim=True)


def conv_matrix(kernel, n, stride=1, padding=0):
    """The matrix C of a 2D convolution (PyTorch's, i.e. cross-correlation) of one k x k kernel on
    an n x n image: C @ x.flatten() == F.conv2d(x, kernel, stride=stride, padding=padding).flatten().
    Row i * m + j is output pixel (i, j), m = (n + 2 padding - k) // stride + 1; it holds the kernel
    weights at the input pixels (i stride - padding + a, j stride - padding + b) that lie inside.
    Multiplying by C.T is the transposed convolution: C.T @ y.flatten() equals
    F.conv_transpose2d(y, kernel, stride=stride, padding=padding, output_padding=(n + 2 padding - k) % stride).
    kernel: (k, k) tensor -> C: (m * m, n * n), on the kernel's device and dtype."""
    if not torch.is_tensor(kernel) or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be a square (k, k) tensor, got "
                         f"{tuple(kernel.shape) if torch.is_tensor(kernel) else type(kernel).__name__}")
    k = kernel.shape[0]
    m = (n + 2 * padding - k) // stride + 1
    if stride < 1 or padding < 0 or m < 1:
        raise ValueError(f"a {k}x{k} kernel does not fit an {n}x{n} input with stride {stride} and padding "
                         f"{padding}: use n >= k - 2 padding, stride >= 1, padding >= 0")
    C = torch.zeros(m * m, n * n, dtype=kernel.dtype, device=kernel.device)
    for i in range(m):
        for j in range(m):
            for a in range(k):
                for b in range(k):
                    r, c = i * stride - padding + a, j * stride - padding + b
                    if 0 <= r < n and 0 <= c < n:
                        C[i * m + j, r * n + c] = kernel[a, b]
    return C


def overlap_counts(kernel_size, stride, size, device="cpu"):
    """How many input pixels a stride-`stride` transposed convolution adds into each output pixel
    (no padding): the transposed convolution of a size x size image of ones with a k x k kernel of
    ones. Away from the borders it is uniform when k is a multiple of the stride (4 with stride 2:
    2 x 2 = 4 everywhere) and a checkerboard otherwise (3: 1, 2, 4; 5: 4, 6, 9), the origin of
    checkerboard artifacts (Odena et al. 2016). -> (H, W) float tensor, H = W = (size - 1) stride + k."""
    if min(kernel_size, stride, size) < 1:
        raise ValueError(f"kernel_size, stride and size must be >= 1, got {kernel_size}, {stride}, {size}")
    ones = torch.ones(1, 1, size, size, device=device)
    weight = torch.ones(1, 1, kernel_size, kernel_size, device=device)
    return nn.functional.conv_transpose2d(ones, weight, stride=stride)[0, 0]
