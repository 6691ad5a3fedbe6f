"""gan_utils.models: shapes, dtypes, the course's architectures and the special layers."""
import math

import pytest
import torch
from torch import nn

import gan_utils as gu


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_course_mlp_gan_architecture():
    G, D = gu.MLPGenerator(), gu.MLPDiscriminator()
    linears = [m for m in G.net if isinstance(m, nn.Linear)]
    assert [l.out_features for l in linears] == [128, 256, 512, 1024, 784]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in G.net) == 4 and isinstance(G.net[-1], nn.Sigmoid)
    assert [l.out_features for l in D.body if isinstance(l, nn.Linear)] == [512, 256, 128]
    assert all(m.negative_slope == 0.2 for m in D.body if isinstance(m, nn.LeakyReLU))
    assert n_params(G) == 1_505_680 and n_params(D) == 566_273
    x = G(torch.randn(5, 64))
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert D(x).shape == (5, 1) and D.features(x).shape == (5, 128)
    assert D(x.view(5, -1)).shape == (5, 1)


def test_toy_mlps_and_tanh():
    G = gu.MLPGenerator(noise_dim=8, out_shape=(2,), widths=(16,), norm=None, out=None)
    assert G(torch.randn(3, 8)).shape == (3, 2)
    assert gu.MLPDiscriminator(in_dim=2, widths=(16, 16))(torch.randn(3, 2)).shape == (3, 1)
    assert gu.MLPGenerator(out="tanh")(torch.randn(4, 64)).min() >= -1


def test_wrong_input_shapes_say_what_to_check():
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 64\).*noise_dim"):
        gu.MLPGenerator()(torch.randn(4, 10))
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        gu.MLPDiscriminator()(torch.randn(4, 1, 32, 32))
    with pytest.raises(ValueError, match="norm"):
        gu.MLPGenerator(norm="layer")
    with pytest.raises(ValueError, match="image_size"):
        gu.DCGANGenerator(image_size=48)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        gu.DCGANDiscriminator()(torch.randn(2, 3, 28, 28))


def test_maxout_is_the_max_over_pieces():
    layer = gu.models.Maxout(6, 4, pieces=3)
    x = torch.randn(5, 6)
    expected = layer.linear(x).view(5, 4, 3).max(dim=2).values
    assert torch.equal(layer(x), expected) and layer(x).shape == (5, 4)
    D = gu.MaxoutDiscriminator()
    assert D(torch.rand(7, 1, 28, 28)).shape == (7, 1) and D.features(torch.rand(7, 784)).shape == (7, 240)


def test_virtual_batch_norm_makes_each_output_independent_of_its_batch():
    torch.manual_seed(0)
    G = gu.MLPGenerator(noise_dim=8, out_shape=(3,), widths=(16, 16), norm="virtual", out=None)
    with pytest.raises(RuntimeError, match="set_reference"):
        G(torch.randn(4, 8))
    G.set_reference(torch.randn(32, 8))
    z = torch.randn(6, 8)
    alone = torch.cat([G(z[i:i + 1]) for i in range(6)])
    assert torch.allclose(G(z), alone, atol=1e-6)          # batch norm would fail this
    vbn = gu.models.VirtualBatchNorm(3)
    vbn.n_ref = 4
    ref, x = torch.randn(4, 3), torch.randn(1, 3)
    out = vbn(torch.cat([ref, x]))[4]
    both = torch.cat([ref, x])
    expected = (x[0] - both.mean(0)) / torch.sqrt(both.var(0, unbiased=False) + 1e-5)
    assert torch.allclose(out, expected, atol=1e-5)         # the formula of Salimans et al.
    assert "z_ref" in G.state_dict()


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
@pytest.mark.parametrize("upsample", [False, True])
def test_dcgan_shapes(size, channels, upsample):
    G = gu.DCGANGenerator(noise_dim=100, channels=channels, image_size=size, width=16, upsample=upsample)
    D = gu.DCGANDiscriminator(channels=channels, image_size=size, width=16)
    x = G(torch.randn(3, 100))
    assert x.shape == (3, channels, size, size) and x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (3, 1)
    assert isinstance(G.net[-1], nn.Tanh)
    bns = [m for m in D.body if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == sum(isinstance(m, nn.Conv2d) for m in D.body) - 1   # no BN on D's input


def test_dcgan_init():
    torch.manual_seed(0)
    G = gu.DCGANGenerator(width=64)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
