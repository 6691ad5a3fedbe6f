"""Notebook 04's MNIST table: notebook 03's MLP GAN with each trick that applies to it, 3 seeds,
one budget of G steps, on the paper's protocol (train[0:50000]).

    GAN_DATA_DIR=../shared/mnist-full python experiments/04_mnist.py --threads 1
    GAN_DATA_DIR=../shared/mnist-full python experiments/04_mnist.py --tricks GAN "spectral norm" --seeds 0

The baseline is notebook 03's main setting: G 4 x (Linear, BatchNorm, ReLU) + Linear + Sigmoid,
D 3 x (Linear, LeakyReLU) + Linear, noise 64, batch 128, Adam 2e-4 betas (0.5, 0.999), the
non-saturating loss. Each trick changes one thing (see TRICKS). Every run trains `--epochs`
epochs (390 G steps each) through `gan_utils.train_run`, so it checkpoints every epoch and an
interrupted run resumes; the validation Fréchet distance of 1,000 samples is recorded every epoch.
The generator of the last epoch is evaluated as in notebook 03 (`gan_utils.evaluate_generator`:
10,000 samples; modes and KL of the classifier's histogram, Fréchet distance against the 10,000
test images, Parzen log-likelihood). The budget is counted in G steps: a trick with k critic steps
per G step (WGAN, WGAN-GP) reads k batches per G step, so its "epoch" is the 390 G steps of the
baseline's epoch and takes k times the data (`CriticEpochs`); its runs cost 5-10 times the
baseline's.

Results: gan_utils/results/04_mnist.json (one entry per trick and seed, written when done;
rerunning skips them), with 25 samples of seed 0's generator (the file stays under 1 MB).
"""
import argparse
import base64
import itertools
import sys
import time
from pathlib import Path

import torch

import gan_utils as gu
from gan_utils.lessons import seeds
from gan_utils.steps import count_d_steps

sys.path.insert(0, str(Path(__file__).resolve().parent))   # experiments/common.py, also when a test loads this file
from common import read_json, write_json  # noqa: E402

LR = 2e-4   # the baseline's learning rate, both players
# name -> what changes from the baseline: "loss" (a name or GANLoss), "D"/"G" builders, and the optimizers'
# "optimizer", "lr_g"/"lr_d", "betas" and the critic schedule "k", read as in `seeds.trick_optimizers`
TRICKS = {
    "GAN": {},
    "label smoothing": {"loss": gu.get_loss("nonsaturating", real_label=0.9)},
    "feature matching": {"loss": "feature_matching"},
    "minibatch discrimination": {"D": lambda: gu.MLPDiscriminator(minibatch=16)},
    "virtual batch norm": {"G": lambda: gu.MLPGenerator(noise_dim=64, norm="virtual")},
    "maxout D": {"D": lambda: gu.MaxoutDiscriminator()},
    "PacGAN2": {"D": lambda: gu.MLPDiscriminator(pack=2)},
    "TTUR": {"lr_g": 1e-4, "lr_d": 4e-4},
    "spectral norm": {"D": lambda: gu.spectral_normalize(gu.MLPDiscriminator())},
    "R1": {"loss": gu.r1_loss(gamma=10.0)},
    # the critics: WGAN as in its reference code, WGAN-GP with lambda 10 on images
    "WGAN": {"loss": gu.wgan_loss(clip=0.01), "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5,
             "k": seeds.wgan_critic_steps},
    "WGAN-GP": {"loss": gu.wgan_gp_loss(lam=10.0), "lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.5, 0.9), "k": 5},
}


class CriticEpochs:
    """An 'epoch' of `g_steps` G steps for a run with k(step) D steps per G step: it yields the
    sum of k over the epoch's G steps worth of minibatches, read from `data` pass after pass, pass p
    shuffled from the seed (seed, p) (torch's own random numbers untouched), so that a run resumed at
    `epoch` (the index of the next epoch) reads exactly the batches of an uninterrupted one.
    len() is g_steps, so train_run's callback fires once per such epoch."""

    def __init__(self, data, k, g_steps, epoch=0, seed=0):
        self.data, self.k, self.g_steps, self.epoch, self.seed = data, k, g_steps, epoch, seed
        self.batches = None

    def __len__(self):
        return self.g_steps

    def _pass(self, p, skip=0):
        """The batches of pass p over the data, the first `skip` of them left out."""
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_initialized() else []):
            torch.manual_seed(self.seed * 1_000_003 + p)
            batches = iter(self.data)
            first = [next(batches)]                  # the shuffle happens here, under the pass's seed
        batches = itertools.chain(first, batches)
        for _ in range(skip):
            next(batches)
        return batches

    def __iter__(self):
        first = self.epoch * self.g_steps
        self.epoch += 1
        if self.batches is None:                     # a fresh start or a resume: where the passes stand
            self.read = sum(self.k(step) for step in range(first))
            self.batches = self._pass(self.read // len(self.data), self.read % len(self.data))
        for step in range(first, first + self.g_steps):
            for _ in range(self.k(step)):
                real = next(self.batches, None)
                if real is None:
                    self.batches = self._pass(self.read // len(self.data))
                    real = next(self.batches)
                self.read += 1
                yield real


def build(trick, seed, device):
    """(G, D, opt_g, opt_d, loss) of a trick, initialized from `seed`."""
    t = TRICKS[trick]
    gu.seed_everything(seed)
    G = (t.get("G") or (lambda: gu.MLPGenerator(noise_dim=64)))().to(device)
    D = (t.get("D") or (lambda: gu.MLPDiscriminator()))().to(device)
    if t.get("G"):      # virtual batch norm: a fixed reference batch of noise, chosen once
        G.set_reference(torch.randn(128, 64, generator=torch.Generator().manual_seed(seed)).to(device))
    opt_g, opt_d = seeds.trick_optimizers(G, D, t, lr=LR)
    return G, D, opt_g, opt_d, t.get("loss", "nonsaturating")


def encode_images(images):
    """(N, 1, 28, 28) in [0, 1] -> base64 of their uint8 pixels (the JSON stays small)."""
    return base64.b64encode((images * 255).round().to(torch.uint8).numpy().tobytes()).decode()


def run(trick, seed, epochs, split, classifier, device):
    f_valid = gu.classifier_features(split["x_valid"][:1000], classifier)
    z_eval = torch.randn(1000, 64, generator=torch.Generator().manual_seed(1)).to(device)
    z_fixed = torch.randn(64, 64, generator=torch.Generator().manual_seed(123)).to(device)
    data = gu.TensorBatches(split["x_train"].to(device), 128)
    G, D, opt_g, opt_d, loss = build(trick, seed, device)
    settings = {"experiment": "04_mnist", "trick": trick, "seed": seed, "epochs": epochs,
                "data": split["protocol"], "n_train": len(split["x_train"])}
    k = TRICKS[trick].get("k", 1)
    if k != 1:                        # the same G steps per epoch: k batches per G step
        k = k if callable(k) else (lambda step, k=k: k)
        path = gu.runs.checkpoint_dir() / f"04_mnist-{gu.runs.settings_key(settings)}.pt"
        done = gu.checkpoints.read_checkpoint(path)["epoch"] if path.is_file() else 0
        data = CriticEpochs(data, k, len(data), epoch=done, seed=seed)
    watch = gu.Watcher(z_fixed, lambda G: gu.generator_scores(G, z_eval, f_valid, classifier), len(data))
    history = gu.train_run(G, D, data, name="04_mnist", settings=settings, watcher=watch, epochs=epochs,
                           noise=gu.make_noise(64, device=device), opt_g=opt_g, opt_d=opt_d, loss=loss,
                           k=TRICKS[trick].get("k", 1), progress=False)
    t0 = time.perf_counter()
    e = gu.evaluate_generator(G, split, classifier)
    return {"trick": trick, "seed": seed, "epochs": epochs, "steps": history["step"][-1],
            "d_steps": count_d_steps(TRICKS[trick].get("k", 1), history["step"][-1]),
            "train_minutes": watch.seconds / 60, "eval_seconds": time.perf_counter() - t0,
            **gu.evaluation_summary(e),
            "valid_frechet": {str(k): v["frechet"] for k, v in sorted(watch.scores.items())},
            **({"samples_b64": encode_images(e["samples"][:25])} if seed == 0 else {}),   # the notebook shows seed 0
            "hardware": watch.trained_on, "torch": torch.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tricks", nargs="+", default=list(TRICKS), choices=list(TRICKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="04_mnist.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = gu.get_device()
    split = gu.mnist_split()
    classifier = gu.load_classifier(split, device=device, verbose=False)
    out = Path(gu.__file__).parent / "results" / args.out
    for seed in args.seeds:
        for trick in args.tricks:
            key = f"{trick}/{seed}/{args.epochs}"
            if key in read_json(out, {}):
                continue
            try:
                r = run(trick, seed, args.epochs, split, classifier, device)
            except KeyboardInterrupt as stop:            # Ctrl-C: nothing recorded, the sweep stops here
                raise SystemExit(f"{key} interrupted ({stop}): no result written; run the command again to "
                                 f"resume from its last checkpoint") from None
            print(f"{key}: modes {r['modes']}, KL {r['kl']:.3f}, FD {r['frechet']:.1f}, Parzen {r['parzen']:.1f}, "
                  f"{r['train_minutes']:.1f} + {r['eval_seconds'] / 60:.1f} min", flush=True)
            write_json(out, {**read_json(out, {}), key: r}, indent=None)

if __name__ == "__main__":
    main()
