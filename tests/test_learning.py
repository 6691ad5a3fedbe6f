"""Learning tests: really train the toy GANs for a few seconds of CPU and check the result.

Settings are seeded; they were checked on several seeds (1D: W1 between 0.03 and 0.08 sigma on
10 seeds; 2D: 96-99% of samples near the line, full coverage on 4 seeds).
"""
import pytest
import torch

import gan_utils as gu


@pytest.fixture(autouse=True)
def one_thread():
    """Toy models are too small for threads to help; one thread is faster and repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_toy(sampler, dim, epochs, seed=0):
    gu.seed_everything(seed)
    G = gu.MLPGenerator(noise_dim=8, out_shape=(dim,), widths=(32, 32) if dim == 1 else (64, 64),
                        norm=None, out=None)
    D = gu.MLPDiscriminator(in_dim=dim, widths=(64, 64))
    betas = (0.0, 0.9)
    gu.train_gan(G, D, gu.ToyBatches(sampler, 256, 100), noise=gu.make_noise(8), epochs=epochs,
                 opt_g=gu.make_optimizer(G, lr=5e-4, betas=betas),
                 opt_d=gu.make_optimizer(D, lr=1e-3, betas=betas), progress=False)
    return gu.generate(G, torch.randn(10000, 8))


def test_1d_gan_learns_the_gaussian():
    mu, sigma = 4.0, 1.25
    fake = train_toy(lambda n: gu.sample_gaussian_1d(n, mu, sigma), dim=1, epochs=10)
    w1 = gu.w1_to_gaussian(fake, mu, sigma)
    assert w1 < 0.1 * sigma, f"W1 = {w1:.3f} = {w1 / sigma:.2f} sigma"
    assert gu.ks_to_gaussian(fake, mu, sigma) < 0.1


def test_2d_gan_learns_the_line_segment():
    a, b, x_range = 0.5, 1.0, (-2.0, 2.0)
    fake = train_toy(lambda n: gu.sample_line_2d(n, a, b, x_range), dim=2, epochs=8)
    assert gu.fraction_near_line(fake, a, b, tol=0.1) >= 0.9
    assert gu.line_coverage(fake, a, b, x_range) >= 0.9
    assert gu.mean_line_distance(fake, a, b) < 0.06
