"""Notebook 03's two learning-rate settings, trained for the full 250 epochs on the paper's protocol.

    GAN_DATA_DIR=../shared/mnist-full python experiments/03_learning_rates.py --setting source
    GAN_DATA_DIR=../shared/mnist-full python experiments/03_learning_rates.py --setting dcgan
    GAN_DATA_DIR=../shared/mnist-full python experiments/03_learning_rates.py --setting r1

'source': Adam lr 1e-5 with its default betas (0.9, 0.999), as in the course's source;
'dcgan':  Adam lr 2e-4 with betas (0.5, 0.999) (Radford et al. 2016).
'r1':     'dcgan' with the R1 penalty on D (gamma 10, as notebook 04's MNIST table): does it bring
          the KL of the 250-epoch run below 0.10, as it did after 3 epochs (0.059)? Yes: 0.002
          early-stopped at epoch 192, with a Frechet distance of 7.8 against the main run's 84.
Everything else is notebook 03's main run: the MLP GAN, noise 64, batch 128, the non-saturating
loss, seed 0, train[0:50000], a validation score every epoch and early stopping by the validation
Fréchet distance. The run goes through `gan_utils.train_run` under the same settings key as the
notebook's main cell, so it checkpoints every epoch and resumes after an interruption, and a
notebook with the same settings reloads the finished run instead of training it again.

Writes gan_utils/results/03_<setting>.json (scores every epoch; the evaluation of the
early-stopped and the last generator: modes, KL, Fréchet distance, Parzen) and 03_<setting>.png
(the fixed-noise samples at epochs 1, 20, the best one and the last).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import gan_utils as gu

sys.path.insert(0, str(Path(__file__).resolve().parent))   # experiments/common.py, also when a test loads this file
from common import write_json  # noqa: E402

SETTINGS = {"source": {"lr": 1e-5, "betas": (0.9, 0.999)}, "dcgan": {"lr": 2e-4, "betas": (0.5, 0.999)},
            "r1": {"lr": 2e-4, "betas": (0.5, 0.999), "loss": "r1, gamma 10"}}
LOSSES = {"r1, gamma 10": gu.r1_loss(gamma=10.0)}     # a loss that is not a name of gu.get_loss


def run(setting, epochs, device):
    """Train one setting (or reload it) and evaluate it; returns the results dict."""
    split = gu.mnist_split()
    classifier = gu.load_classifier(split, device=device, verbose=False)
    lr, betas = SETTINGS[setting]["lr"], SETTINGS[setting]["betas"]
    settings = {"data": split["protocol"], "n_train": len(split["x_train"]), "seed": 0, "noise_dim": 64,
                "batch": 128, "lr": lr, "betas": list(betas), "loss": SETTINGS[setting].get("loss", "nonsaturating"),
                "epochs": epochs,
                "eval_every": 1, "n_eval": 1000}
    f_valid = gu.classifier_features(split["x_valid"][:1000], classifier)
    z_eval = torch.randn(1000, 64, generator=torch.Generator().manual_seed(1)).to(device)
    z_fixed = torch.randn(64, 64, generator=torch.Generator().manual_seed(123)).to(device)
    data = gu.TensorBatches(split["x_train"].to(device), 128)
    G, D, opt_g, opt_d = gu.mlp_gan(noise_dim=64, lr=lr, betas=betas, seed=0, device=device)
    watch = gu.Watcher(z_fixed, lambda G: gu.generator_scores(G, z_eval, f_valid, classifier), len(data))
    try:
        history = gu.train_run(G, D, data, name="03_mnist_mlp_gan", settings=settings, watcher=watch, epochs=epochs,
                               noise=gu.make_noise(64, device=device), opt_g=opt_g, opt_d=opt_d,
                               loss=LOSSES.get(settings["loss"], settings["loss"]), progress=True)
    except gu.TrainingInterrupted as stop:           # Ctrl-C: no results of an unfinished run
        raise SystemExit(f"{stop} (of {epochs * len(data):,} G steps)") from None
    G_best, _ = watch.best_models(G, D)
    t0 = time.perf_counter()
    evals = {"best": gu.evaluate_generator(G_best, split, classifier), "last": gu.evaluate_generator(G, split, classifier)}
    results = {"setting": setting, "settings": settings, "steps": history["step"][-1],
               "train_minutes": watch.seconds / 60, "trained_on": watch.trained_on, "torch": torch.__version__,
               "best_epoch": watch.best["epoch"],
               "scores": {str(e): s for e, s in sorted(watch.scores.items())},
               "eval_seconds": None}
    for which, e in evals.items():
        results[which] = gu.evaluation_summary(e)
    results["eval_seconds"] = time.perf_counter() - t0
    shown = sorted({1, 20, watch.best["epoch"], max(watch.snapshots)} & set(watch.snapshots))
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3.0), dpi=100, squeeze=False)
    for ax, e in zip(axes[0], shown):
        gu.show_images(watch.snapshots[e][:36].float() / 255, nrow=6, ax=ax,
                       title=f"epoch {e}" + (" (best)" if e == watch.best["epoch"] else ""))
    fig.suptitle(f"lr {lr:g}, betas {betas}" + (f", {settings['loss']}" if settings["loss"] != "nonsaturating" else ""))
    fig.tight_layout()
    fig.savefig(Path(gu.__file__).parent / "results" / f"03_{setting}.png")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--epochs", type=int, default=250)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = gu.get_device(verbose=False)
    results = run(args.setting, args.epochs, device)
    out = Path(gu.__file__).parent / "results" / f"03_{args.setting}.json"
    write_json(out, results)
    print(json.dumps({k: results[k] for k in ("best_epoch", "train_minutes", "best", "last")}, indent=1))
