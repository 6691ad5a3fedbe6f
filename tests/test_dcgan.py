"""Notebook 05's foundations: the checkerboard score, the DCGAN variants, transposed convolution."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import gan_utils as gu
from gan_utils.lessons import dcgan

ROOT = Path(__file__).resolve().parent.parent


def smooth_noise(n, sigma, device, seed=0):
    """White noise blurred by a Gaussian of std sigma pixels (circular, so no edges): (n, 1, 28, 28)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.arange(-4, 5.0)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    x = torch.randn(n, 1, 28, 28, generator=g).to(device)
    return F.conv2d(F.pad(x, (4, 4, 4, 4), mode="circular"), k.view(1, 1, 9, 9).to(device))


def test_checkerboard_score_finds_planted_periodic_patterns(device):
    x = smooth_noise(64, 0.7, device)
    i = torch.arange(28, device=device)
    period2 = (-1.0) ** (i[:, None] + i[None, :])                  # +-1 checkerboard: the Nyquist bin
    tile = torch.randn(4, 4, generator=torch.Generator().manual_seed(1)).to(device).repeat(7, 7)   # period 4
    plain = gu.checkerboard_score(x, 4)
    two = gu.checkerboard_score(x + 0.3 * period2, 4)
    four = gu.checkerboard_score(x + 0.3 * tile, 4)
    assert two["nyquist_db"] > 10 and two["bins_db"][(14, 14)] == two["nyquist_db"]
    assert two["mean_db"] > plain["mean_db"] + 1
    assert four["mean_db"] > 10 and min(four["bins_db"].values()) > 3    # every grid bin has a peak
    assert len(four["bins_db"]) == 15 and (0, 0) not in four["bins_db"]
    assert set(four["bins_db"]) == {(u, v) for u in (0, 7, 14, 21) for v in (0, 7, 14, 21)} - {(0, 0)}


@pytest.mark.parametrize("sigma", [0.0, 0.7, 1.0])
def test_checkerboard_score_of_smooth_noise_is_near_zero(sigma, device):
    x = smooth_noise(256, sigma, device) if sigma else torch.randn(256, 1, 28, 28, device=device)
    score = gu.checkerboard_score(x, 4)
    assert abs(score["mean_db"]) < 1.5 and abs(score["nyquist_db"]) < 3


def test_checkerboard_score_ignores_brightness_and_contrast(device):
    x = smooth_noise(32, 0.7, device, seed=2)
    base = gu.checkerboard_score(x, 4)
    for y in (x + 5.0, 3 * x, 0.5 * x - 2):
        other = gu.checkerboard_score(y, 4)
        assert other["mean_db"] == pytest.approx(base["mean_db"], abs=1e-4)   # float32 rounding of y
        assert other["nyquist_db"] == pytest.approx(base["nyquist_db"], abs=1e-4)


def test_checkerboard_score_bad_input_says_what_to_pass():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gu.checkerboard_score(torch.rand(5, 28, 28), 4)
    for stride in (3, 0, 28, 4.0):
        with pytest.raises(ValueError, match="upsampling factor"):
            gu.checkerboard_score(torch.rand(5, 1, 28, 28), stride)


def test_checkerboard_score_of_real_mnist():
    root = ROOT.parent / "shared" / "data"
    try:
        x, _, _ = gu.mnist.load_images("mnist", train=False, root=root, download=False)
    except FileNotFoundError as exc:
        pytest.skip(f"no MNIST test images: {exc}")
    score = gu.checkerboard_score(x, 4)
    assert score["mean_db"] == pytest.approx(-0.03, abs=0.05)      # the 10,000 test images: -0.032 dB
    assert abs(score["nyquist_db"]) < 0.5


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("upsample", [False, True])
def test_generator_output_size_and_upsample_layers(size, upsample, device):
    G = gu.DCGANGenerator(noise_dim=8, image_size=size, width=8, upsample=upsample).to(device)
    assert G(torch.randn(2, 8, device=device)).shape == (2, 1, size, size)
    kinds = [type(m) for m in G.net]
    transposed = [i for i, k in enumerate(kinds) if k is torch.nn.ConvTranspose2d]
    assert transposed[0] == 0                           # z -> first feature map: always transposed
    n_up = {28: 2, 32: 3, 64: 4}[size]
    if upsample:
        assert transposed == [0] and kinds.count(torch.nn.Upsample) == n_up
    else:
        assert len(transposed) == 1 + n_up and torch.nn.Upsample not in kinds


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
def test_conditional_dcgan_shapes_and_labels_matter(size, channels, device):
    torch.manual_seed(0)
    G = gu.DCGANGenerator(noise_dim=8, channels=channels, image_size=size, width=8, n_classes=10).to(device).eval()
    D = gu.DCGANDiscriminator(channels=channels, image_size=size, width=8, n_classes=10).to(device).eval()
    z = torch.randn(4, 8, device=device)
    y = torch.tensor([0, 3, 7, 9], device=device)
    with torch.no_grad():
        x = G(z, y)
        assert x.shape == (4, channels, size, size) and D(x, y).shape == (4, 1)
        assert not torch.allclose(G(z, (y + 1) % 10), x)        # the label changes the image ...
        assert not torch.allclose(D(x, (y + 1) % 10), D(x, y))  # ... and D's verdict
        assert torch.equal(G(z, y), x)                          # the same (z, y): the same image (eval)
    # the projection term is <embed(y), features(x)> on top of the unconditional logit
    with torch.no_grad():
        h = D.features(x)
        plain = D.head(h.view(4, -1, *D.head.kernel_size)).view(-1, 1)
        assert torch.allclose(D(x, y), plain + (D.embed.weight[y] * h).sum(1, keepdim=True), atol=1e-5)


def test_conditional_models_reuse_the_unconditional_stacks():
    G0, G1 = gu.DCGANGenerator(width=8), gu.DCGANGenerator(width=8, n_classes=10, embed_dim=5)
    assert [type(m) for m in G0.net] == [type(m) for m in G1.net]
    assert G1.net[0].in_channels == G0.net[0].in_channels + 5
    D0, D1 = gu.DCGANDiscriminator(width=8), gu.DCGANDiscriminator(width=8, n_classes=10)
    assert [type(m) for m in D0.body] == [type(m) for m in D1.body] and D0.embed is None


def test_bad_labels_get_clear_errors():
    G, D = gu.DCGANGenerator(noise_dim=8, width=8, n_classes=10), gu.DCGANDiscriminator(width=8, n_classes=10)
    z, x = torch.randn(3, 8), torch.rand(3, 1, 28, 28)
    cases = [(None, "pass the labels too"), (torch.tensor([0, 1, 10]), r"in \[0, 10\).*0 to 10"),
             (torch.tensor([-1, 1, 2]), r"in \[0, 10\)"), (torch.tensor([0.0, 1.0, 2.0]), "integer tensor.*float32"),
             (torch.tensor([0, 1]), r"shape \(3,\)"), (torch.zeros(3, 1, dtype=torch.long), r"shape \(3,\)"),
             ([0, 1, 2], "integer tensor.*list")]
    for y, message in cases:
        with pytest.raises(ValueError, match=message):
            G(z, y)
        with pytest.raises(ValueError, match=message):
            D(x, y)
    with pytest.raises(ValueError, match="without labels"):
        gu.DCGANGenerator(noise_dim=8, width=8)(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="without labels"):
        gu.DCGANDiscriminator(width=8)(x, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("k,n,stride,padding", [(3, 4, 1, 0), (3, 4, 2, 1), (4, 6, 2, 1), (3, 5, 2, 0)])
def test_conv_matrix_is_conv2d_and_its_transpose_is_conv_transpose2d(k, n, stride, padding, device):
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(k, k, generator=g, dtype=torch.float64).to(device)
    C = dcgan.conv_matrix(kernel, n, stride, padding)
    m = (n + 2 * padding - k) // stride + 1
    assert C.shape == (m * m, n * n) and C.device.type == device
    x = torch.randn(1, 1, n, n, generator=g, dtype=torch.float64).to(device)
    w = kernel.view(1, 1, k, k)
    assert torch.allclose(C @ x.flatten(), F.conv2d(x, w, stride=stride, padding=padding).flatten())
    y = torch.randn(1, 1, m, m, generator=g, dtype=torch.float64).to(device)
    up = F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=(n + 2 * padding - k) % stride)
    assert up.shape[-2:] == (n, n) and torch.allclose(C.T @ y.flatten(), up.flatten())
    with pytest.raises(ValueError, match="square"):
        dcgan.conv_matrix(torch.ones(3, 2), n)
    with pytest.raises(ValueError, match="does not fit"):
        dcgan.conv_matrix(kernel, k - 2 * padding - 1, stride, padding)


def test_overlap_counts_are_uneven_unless_the_kernel_is_a_multiple_of_the_stride(device):
    def interior(k):
        counts = dcgan.overlap_counts(k, 2, 6, device=device)
        assert counts.shape == (5 * 2 + k, 5 * 2 + k) and counts.device.type == device
        return counts[k:-k, k:-k]                         # away from the borders
    assert set(interior(4).unique().tolist()) == {4.0}   # 2 x 2 everywhere: no checkerboard
    assert set(interior(3).unique().tolist()) == {1.0, 2.0, 4.0}
    assert set(interior(5).unique().tolist()) == {4.0, 6.0, 9.0}
    assert dcgan.overlap_counts(3, 2, 6).sum() == 6 * 6 * 3 * 3   # every input pixel adds k x k values
    with pytest.raises(ValueError, match=">= 1"):
        dcgan.overlap_counts(0, 2, 6)


def test_generator_pixels_option_maps_tanh_to_the_unit_interval(device):
    torch.manual_seed(0)
    G = gu.DCGANGenerator(noise_dim=8, width=8).to(device).eval()
    G01 = gu.DCGANGenerator(noise_dim=8, width=8, pixels="01").to(device).eval()
    G01.load_state_dict(G.state_dict())
    z = torch.randn(5, 8, device=device)
    with torch.no_grad():
        assert torch.allclose(G01(z), (G(z) + 1) / 2)
        assert G01(z).min() >= 0 and G01(z).max() <= 1
    with pytest.raises(ValueError, match="pixels must be"):
        gu.DCGANGenerator(pixels="255")


def test_train_gan_trains_a_conditional_gan_from_labelled_batches(device):
    """(images, labels) batches: G(z, y) and D(x, y) get the real batch's labels in both steps."""
    torch.manual_seed(0)
    G, D, opt_g, opt_d = dcgan.dcgan(noise_dim=8, width=4, n_classes=10, device=device)
    x, y = torch.rand(64, 1, 28, 28, device=device), torch.randint(0, 10, (64,), device=device)
    seen = []
    forward = D.forward
    D.forward = lambda inp, labels=None: (seen.append(labels), forward(inp, labels))[1]
    before = [p.detach().clone() for p in G.parameters()]
    history = gu.train_gan(G, D, gu.TensorBatches(x, 32, labels=y), noise=gu.make_noise(8, device=device),
                           epochs=1, opt_g=opt_g, opt_d=opt_d, progress=False)
    assert history["step"][-1] == 2 and all(labels is not None and len(labels) == 32 for labels in seen)
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert G.embed.weight.grad is not None                        # the label reached G
    out = gu.generate(G, torch.randn(3, 8, device=device), torch.tensor([1, 2, 3], device=device))
    assert out.shape == (3, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="pass the labels too"):
        gu.generate(G, torch.randn(3, 8, device=device))
    real, G_y, D_y = gu.train.with_labels((x[:3], y[:3]), G, D)    # how train_gan binds a batch's labels
    assert real is not x and torch.equal(real, x[:3]) and torch.equal(G_y.y, y[:3]) and D_y.model is D
    with pytest.raises(TypeError, match="conditional GAN"):
        gu.train.with_labels((x, y, y), G, D)


def test_generator_scores_reports_the_accuracy_of_requested_labels():
    """A 'generator' that returns real test digits of known classes: accuracy is the classifier's."""
    root = ROOT.parent / "shared" / "data"
    try:
        x, labels, _ = gu.mnist.load_images("mnist", train=False, root=root, download=False, limit=200)
    except FileNotFoundError as exc:
        pytest.skip(f"no MNIST test images: {exc}")
    classifier = gu.load_classifier(gu.mnist_split(root=root, download=False), verbose=False)

    class Lookup(torch.nn.Module):             # G(z, y): the z-th image, whatever y asks for
        noise_dim = 1

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, y):
            return x[z.view(-1).long()]

    z = torch.arange(200).float().view(200, 1)
    right = gu.generator_scores(Lookup(), z, gu.classifier_features(x, classifier), classifier, y=labels)
    wrong = gu.generator_scores(Lookup(), z, gu.classifier_features(x, classifier), classifier, y=(labels + 1) % 10)
    assert right["accuracy"] > 0.97 and wrong["accuracy"] < 0.03
    assert right["frechet"] < 1e-6 and right["modes"] == 10


def test_concat_discriminator_reads_the_label_as_an_input_channel(device):
    """conditioning='concat' (Mirza & Osindero): a learned 28x28 map per class enters as a second channel."""
    torch.manual_seed(0)
    D = gu.DCGANDiscriminator(width=8, n_classes=10, conditioning="concat").to(device).eval()
    assert D.body[0].in_channels == 2 and D.embed is None and D.label_map.weight.shape == (10, 28 * 28)
    x, y = torch.rand(4, 1, 28, 28, device=device), torch.tensor([0, 3, 7, 9], device=device)
    with torch.no_grad():
        assert D(x, y).shape == (4, 1) and not torch.allclose(D(x, (y + 1) % 10), D(x, y))
        planes = D.label_map(y).view(4, 1, 28, 28)
        plain = D.head(D.body(torch.cat([x, planes], 1))).view(-1, 1)
        assert torch.allclose(D(x, y), plain, atol=1e-6)
    with pytest.raises(ValueError, match="pass the labels too"):
        D(x)
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        D(x, torch.tensor([0, 1, 2, 10], device=device))
    with pytest.raises(ValueError, match="conditioning must be"):
        gu.DCGANDiscriminator(n_classes=10, conditioning="film")


def test_matching_aware_loss_shows_d_real_images_with_wrong_labels(device):
    """GAN-CLS's D loss: BCE(real, 1) + 1/2 BCE(real with another label, 0) + 1/2 BCE(fake, 0)."""
    torch.manual_seed(0)
    D = gu.DCGANDiscriminator(width=4, n_classes=10, conditioning="concat").to(device)
    real, fake = torch.rand(8, 1, 28, 28, device=device), torch.rand(8, 1, 28, 28, device=device)
    y = torch.arange(8, device=device)
    loss = gu.matching_aware_loss()
    torch.manual_seed(1)
    value, real_out, fake_out = loss.d_loss(gu.train.WithLabels(D, y), real, fake)
    torch.manual_seed(1)
    wrong = (y + torch.randint(1, 10, y.shape, device=device)) % 10
    assert (wrong != y).all()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(D(real, y), torch.ones(8, 1, device=device)) + 0.5 * bce(D(real, wrong), torch.zeros(8, 1, device=device)) \
        + 0.5 * bce(D(fake, y), torch.zeros(8, 1, device=device))
    assert torch.allclose(value, expected, atol=1e-5) and real_out.shape == fake_out.shape == (8, 1)
    with pytest.raises(TypeError, match="conditional GANs"):
        loss.d_loss(D, real, fake)


def test_minibatch_discrimination_lets_d_see_repeated_samples(device):
    """DCGANDiscriminator(minibatch=K): a batch of copies gets other minibatch features than a varied batch."""
    torch.manual_seed(0)
    D = gu.DCGANDiscriminator(width=4, n_classes=10, conditioning="concat", minibatch=4).to(device).eval()
    y = torch.zeros(8, dtype=torch.long, device=device)
    varied = torch.rand(8, 1, 28, 28, device=device)
    copies = varied[:1].expand(8, -1, -1, -1)
    with torch.no_grad():
        o_copies = D.minibatch(D.features(copies, y))[:, -4:]
        o_varied = D.minibatch(D.features(varied, y))[:, -4:]
        assert torch.allclose(o_copies, torch.full_like(o_copies, 8.0))    # each copy is close to all 8
        assert (o_varied < o_copies).all() and D(varied, y).shape == (8, 1)
    assert gu.DCGANDiscriminator(width=4).minibatch is None
