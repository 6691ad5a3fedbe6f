"""gan_utils.losses against their closed forms."""
import math

import pytest
import torch

import gan_utils as gu


def test_discriminator_loss_at_one_half_is_2_log_2():
    zeros = torch.zeros(10, 1)               # logit 0 <=> D = 1/2
    assert math.isclose(gu.discriminator_loss(zeros, zeros).item(), 2 * math.log(2), rel_tol=1e-6)


def test_losses_match_their_formulas():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    d = torch.sigmoid
    expected_d = -(torch.log(d(real)).mean() + torch.log(1 - d(fake)).mean())
    assert torch.allclose(gu.discriminator_loss(real, fake), expected_d)
    smooth = -((0.9 * torch.log(d(real)) + 0.1 * torch.log(1 - d(real))).mean() + torch.log(1 - d(fake)).mean())
    assert torch.allclose(gu.discriminator_loss(real, fake, real_label=0.9), smooth)
    assert torch.allclose(gu.generator_loss_saturating(fake), torch.log(1 - d(fake)).mean())
    assert torch.allclose(gu.generator_loss_nonsaturating(fake), -torch.log(d(fake)).mean())
    assert torch.allclose(gu.losses.wgan_critic_loss(real, fake), fake.mean() - real.mean())
    assert torch.allclose(gu.losses.wgan_generator_loss(fake), -fake.mean())
    f_real, f_fake = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert torch.allclose(gu.feature_matching_loss(f_real, f_fake), torch.tensor(1.0 + 4.0))
    assert gu.feature_matching_loss(f_real, f_real).item() == 0


def test_losses_are_stable_for_huge_logits():
    big = torch.tensor([[1e4], [-1e4]])
    for value in (gu.discriminator_loss(big, -big), gu.generator_loss_saturating(big),
                  gu.generator_loss_nonsaturating(big)):
        assert torch.isfinite(value)


def test_saturating_gradient_vanishes_when_d_rejects_fakes():
    """Early in training D(G(z)) ~ 0: log(1 - D) is flat there, -log D is steep."""
    logit = torch.tensor([[-8.0]], requires_grad=True)
    gu.generator_loss_saturating(logit).backward()
    g_sat = logit.grad.abs().item()
    logit.grad = None
    gu.generator_loss_nonsaturating(logit).backward()
    assert g_sat < 1e-3 and logit.grad.abs().item() > 0.99


def test_optimal_discriminator_is_p_data_over_p_data_plus_p_g():
    """Minimizing the D loss over a free D(x) on three points gives D* = p_data / (p_data + p_g)."""
    p_data, p_g = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.2, 0.6])
    real_idx = torch.repeat_interleave(torch.arange(3), (p_data * 10).long())
    fake_idx = torch.repeat_interleave(torch.arange(3), (p_g * 10).long())
    logits = torch.zeros(3, requires_grad=True)
    opt = torch.optim.LBFGS([logits], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = gu.discriminator_loss(logits[real_idx, None], logits[fake_idx, None])
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(torch.sigmoid(logits), p_data / (p_data + p_g), atol=1e-4)


def test_one_sided_smoothing_caps_d_on_real_data_at_the_label():
    logit = torch.zeros(1, 1, requires_grad=True)
    opt = torch.optim.LBFGS([logit], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = gu.discriminator_loss(logit, torch.full((1, 1), -50.0), real_label=0.9)
        loss.backward()
        return loss

    opt.step(closure)
    assert abs(torch.sigmoid(logit).item() - 0.9) < 1e-4


def test_clip_weights_and_bad_arguments():
    model = torch.nn.Linear(4, 4)
    torch.nn.init.normal_(model.weight, std=1.0)
    gu.losses.clip_weights(model, 0.01)
    assert all(p.abs().max() <= 0.01 for p in model.parameters())
    with pytest.raises(ValueError, match="positive"):
        gu.losses.clip_weights(model, 0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'; choose one of"):
        gu.get_loss("hinge")
    with pytest.raises(ValueError, match="real_label"):
        gu.discriminator_loss(torch.zeros(1, 1), torch.zeros(1, 1), real_label=1.5)
    with pytest.raises(ValueError, match="label smoothing"):
        gu.get_loss("wgan", real_label=0.9)
    with pytest.raises(ValueError, match="clip must be a positive number"):
        gu.wgan_loss(clip=0)


def test_get_loss_interface():
    D = gu.MLPDiscriminator(in_dim=2, widths=(4,))
    real, fake = torch.randn(5, 2), torch.randn(3, 2)
    for name in gu.losses.LOSSES:
        loss = gu.get_loss(name)
        value, real_out, fake_out = loss.d_loss(D, real, fake)
        assert value.shape == () and real_out.shape == (5, 1) and fake_out.shape == (3, 1)
        assert loss.g_loss(D, fake, real).shape == ()
        assert loss.critic == (name == "wgan") and loss.clip is None
    clipped = gu.wgan_loss(clip=0.01)
    assert clipped.critic and clipped.clip == 0.01 and gu.wgan_loss(clip=None).clip is None


def test_label_smoothing_is_carried_by_the_loss():
    """(Was train_gan(real_label=0.9).) get_loss(name, real_label=0.9) smooths the real labels of D's loss."""
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    D = lambda x: x   # noqa: E731  the "discriminator" returns its input as the logit
    for name in ("saturating", "nonsaturating", "feature_matching"):
        value, _, _ = gu.get_loss(name, real_label=0.9).d_loss(D, real, fake)
        assert torch.allclose(value, gu.discriminator_loss(real, fake, real_label=0.9))
        assert not torch.allclose(value, gu.get_loss(name).d_loss(D, real, fake)[0])


def test_train_gan_calls_d_step_and_g_step():
    """train_gan's steps are exactly d_step and g_step: the same seed gives the same weights."""
    def run(by_hand):
        gu.seed_everything(0)
        G, D = gu.MLPGenerator(2, (2,), (8,), None, None), gu.MLPDiscriminator(2, (8,))
        opt_g, opt_d = gu.make_optimizer(G, lr=1e-3), gu.make_optimizer(D, lr=1e-3)
        noise, loss = gu.make_noise(2), gu.get_loss("nonsaturating")
        data = [gu.sample_line_2d(16) for _ in range(4)]
        if by_hand:
            for real in data:
                gu.d_step(G, D, opt_d, real, noise, loss)
                gu.g_step(G, D, opt_g, real, noise, loss)
        else:
            gu.train_gan(G, D, data, noise=noise, epochs=1, opt_g=opt_g, opt_d=opt_d, progress=False)
        return torch.cat([p.detach().flatten() for p in G.parameters()])

    assert torch.equal(run(True), run(False))


@pytest.mark.parametrize("name", ["nonsaturating", "saturating", "feature_matching", "wgan"])
def test_g_step_updates_g_as_a_full_backward_would(name, device):
    """g_step computes gradients for G's parameters only: G ends bitwise where a step with
    D's weight gradients too (the plain loss_g.backward()) would put it, and D gets none."""
    def step(only_g):
        gu.seed_everything(0)
        G = gu.MLPGenerator(2, (2,), (8,), None, None).to(device)
        D = gu.MLPDiscriminator(2, (8,)).to(device)
        opt_g = gu.make_optimizer(G, lr=1e-3)
        noise, loss, real = gu.make_noise(2, device=device), gu.get_loss(name), gu.sample_line_2d(16).to(device)
        for _ in range(3):
            if only_g:
                gu.g_step(G, D, opt_g, real, noise, loss)
            else:
                loss_g = loss.g_loss(D, G(noise(len(real))), real)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
        return torch.cat([p.detach().flatten() for p in G.parameters()]), [p.grad for p in D.parameters()]

    (g_only, d_grads), (g_full, d_grads_full) = step(True), step(False)
    assert torch.equal(g_only, g_full)
    assert all(g is None for g in d_grads) and any(g is not None for g in d_grads_full)
