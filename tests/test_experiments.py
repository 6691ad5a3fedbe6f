"""The pieces of experiments/04_mnist.py that its committed results depend on: the critics' epochs
(CriticEpochs: the same G steps per epoch for k D steps per G step) and the D steps stored with
each run (steps.count_d_steps of the trick's k). The experiment itself takes hours; these run on a toy GAN in seconds."""
import json
from pathlib import Path

import pytest
import torch

import gan_utils as gu
from gan_utils.steps import count_d_steps

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnist04(load_script):
    return load_script("experiments/04_mnist.py")


def critic_steps(mnist04, trick, g_steps):
    """The D steps of `g_steps` G steps of a trick of experiments/04_mnist.py (its k schedule)."""
    return count_d_steps(mnist04.TRICKS[trick].get("k", 1), g_steps)


def test_critic_epochs_yield_k_batches_per_g_step_and_wrap_around(mnist04):
    data = [torch.full((1,), float(i)) for i in range(7)]        # 7 batches, labelled by index
    k = lambda step: 3 if step < 2 else 1                        # noqa: E731
    epochs = mnist04.CriticEpochs(data, k, g_steps=4)
    assert len(epochs) == 4                                      # train_gan's callback: once per 4 G steps
    first = [int(b) for b in epochs]
    assert first == [0, 1, 2, 3, 4, 5, 6, 0], first              # 3 + 3 + 1 + 1 batches, then the data again
    assert [int(b) for b in epochs] == [1, 2, 3, 4]              # epoch 1: steps 4-7, k = 1
    resumed = mnist04.CriticEpochs(data, k, g_steps=4, epoch=1)  # resumed after epoch 0: k of steps 4-7
    assert len(list(resumed)) == 4


def test_train_gan_on_critic_epochs_takes_critic_steps(mnist04, device, monkeypatch):
    """With CriticEpochs and the same k, every epoch has g_steps G steps, and the D steps are what
    count_d_steps says (a schedule shaped like WGAN's: many D steps first and now and then)."""
    k = lambda step: 20 if step < 3 or step % 10 == 0 else 2            # noqa: E731
    monkeypatch.setitem(mnist04.TRICKS, "test critic", {"k": k})
    gu.seed_everything(0)
    G, D = gu.MLPGenerator(2, (2,), (8,), None, None).to(device), gu.MLPDiscriminator(2, (8,)).to(device)
    opt_g, opt_d = gu.make_optimizer(G, lr=1e-3), gu.make_optimizer(D, lr=1e-3)
    d_count = []
    opt_d.step = lambda *a, _step=opt_d.step: d_count.append(1) or _step()
    batches = [gu.sample_line_2d(8).to(device) for _ in range(10)]
    data = mnist04.CriticEpochs(batches, k, g_steps=15)
    history = gu.train_gan(G, D, data, noise=gu.make_noise(2, device=device), epochs=2, opt_g=opt_g,
                           opt_d=opt_d, k=k, progress=gu.Progress(bar=False, every=1))
    assert history["step"][-1] == 30 and history["epoch"].count(0) == 15
    assert len(d_count) == critic_steps(mnist04, "test critic", 30) == 20 * 5 + 2 * 25
    assert critic_steps(mnist04, "WGAN", 30) == 100 * 25 + 5 * 5 and critic_steps(mnist04, "GAN", 30) == 30


def test_stored_d_steps_are_critic_steps(mnist04):
    stored = [ROOT / folder / "results" / "04_mnist.json" for folder in ("gan_utils", "experiments")]
    results = json.loads(next(p for p in stored if p.is_file()).read_text())
    for key, run in results.items():
        assert run["d_steps"] == critic_steps(mnist04, run["trick"], run["steps"]), key
    assert {r["d_steps"] for r in results.values() if r["trick"] == "GAN"} == {1170}
