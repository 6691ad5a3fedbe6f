"""Notebook 05's training runs, one job per call, on the paper's protocol (MNIST train[0:50000]).

    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job dcgan        # transposed convs
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job dcgan --width 32   # twice as wide
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job upsample     # upsample + conv
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job conditional   # --conditioning projection
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job conditional --seed 1   # seeds 1, 2: the 3-seed result
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job mlp          # notebook 03's MLP GAN
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job ablation     # lr and beta1, 3 seeds
    GAN_DATA_DIR=../shared/mnist-full python experiments/05_dcgan.py --job fashion      # Fashion-MNIST

The DCGAN jobs go through `gan_utils.lessons.dcgan.dcgan_run` with the notebook's settings, so they
checkpoint every epoch, resume after an interruption, and the notebook reloads them instead of
training again. `mlp` times a DCGAN step against an MLP GAN step in alternating rounds (the
ratio r), trains notebook 03's MLP GAN (lr 2e-4, betas (0.5, 0.999)) for EPOCHS * r epochs (at
most 2 * EPOCHS) and writes the full evaluation of G after EPOCHS epochs (equal G steps) and at the
end (equal wall-clock time) to gan_utils/results/05_mlp.json. `ablation` writes gan_utils/results/05_ablation.json.
Use --threads 1 to run two jobs side by side on a 2-core machine.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gan_utils as gu
from gan_utils.lessons import dcgan

sys.path.insert(0, str(Path(__file__).resolve().parent))   # experiments/common.py, also when a test loads this file
from common import write_json  # noqa: E402

EPOCHS = 10             # notebook 05's main runs (10 epochs = 3,900 G steps)
ABLATION = {"lr 2e-4, beta1 0.5 (DCGAN)": (2e-4, 0.5), "lr 1e-3, beta1 0.5": (1e-3, 0.5),
            "lr 2e-4, beta1 0.9": (2e-4, 0.9)}
ABLATION_EPOCHS, ABLATION_SEEDS = 2, (0, 1, 2)


def step_ratio(split, device, steps=20, rounds=5):
    """Median time per G step of the DCGAN over that of the MLP GAN, timed in alternating rounds in
    this process (so a busy machine slows both alike): how many MLP steps one DCGAN step buys."""
    data = split["x_train"][:128 * steps].to(device)
    times = {"dcgan": [], "mlp": []}
    for _ in range(rounds):
        for name, build in (("dcgan", dcgan.dcgan), ("mlp", gu.mlp_gan)):
            G, D, opt_g, opt_d = build(device=device)
            start = time.perf_counter()
            gu.train_gan(G, D, gu.TensorBatches(data, 128), noise=gu.make_noise(64, device=device), epochs=1,
                         opt_g=opt_g, opt_d=opt_d, progress=False)
            times[name].append((time.perf_counter() - start) / steps)
    medians = {k: float(np.median(v)) for k, v in times.items()}
    return medians["dcgan"] / medians["mlp"], medians


def mlp(split, device):
    """Notebook 03's MLP GAN for 2 * EPOCHS epochs, evaluated at EPOCHS (equal G steps) and at
    EPOCHS * step_ratio (equal wall-clock time)."""
    ratio, ms = step_ratio(split, device)
    equal_time = min(2 * EPOCHS, max(EPOCHS, round(EPOCHS * ratio)))
    print(f"one DCGAN step costs {ratio:.2f} MLP steps ({ms}); equal time: {equal_time} MLP epochs", flush=True)
    classifier = gu.load_classifier(split, device=device, verbose=False)
    G, D, opt_g, opt_d = gu.mlp_gan(noise_dim=64, lr=2e-4, betas=(0.5, 0.999), seed=0, device=device)
    states, clock = {}, {"start": time.perf_counter(), "seconds": {}}
    data = gu.TensorBatches(split["x_train"].to(device), 128)

    def keep(step, G, D, history):
        epoch = step // len(data)
        if epoch in (EPOCHS, equal_time):
            states[epoch] = {k: v.clone() for k, v in G.state_dict().items()}
        clock["seconds"][epoch] = time.perf_counter() - clock["start"]

    gu.train_gan(G, D, data, noise=gu.make_noise(64, device=device), epochs=equal_time, opt_g=opt_g, opt_d=opt_d,
                 loss="nonsaturating", callback=keep)   # keep: at step 0 and after every epoch
    results = {"trained_on": gu.hardware(device), "torch": torch.__version__,
               "minutes": {e: s / 60 for e, s in clock["seconds"].items()},
               "step_ms": {k: 1000 * v for k, v in ms.items()}, "dcgan_over_mlp": ratio,
               "equal_steps_epoch": EPOCHS, "equal_time_epoch": equal_time}
    for key, epoch in (("equal_steps", EPOCHS), ("equal_time", equal_time)):
        G.load_state_dict(states[epoch])
        results[key] = gu.evaluation_summary(gu.evaluate_generator(G, split, classifier))
        results[key]["epoch"] = epoch
    return results


def ablation(split, device):
    """ABLATION settings x ABLATION_SEEDS, ABLATION_EPOCHS each: D's outputs per G step and the final scores."""
    results = {"epochs": ABLATION_EPOCHS, "seeds": list(ABLATION_SEEDS), "trained_on": gu.hardware(device), "runs": {}}
    for label, (lr, beta1) in ABLATION.items():
        for seed in ABLATION_SEEDS:
            G, D, watcher, history = dcgan.dcgan_run(split, epochs=ABLATION_EPOCHS, name="05_ablation", lr=lr,
                                                    betas=(beta1, 0.999), seed=seed, device=device, progress=False)
            results["runs"][f"{label} | seed {seed}"] = {
                "lr": lr, "beta1": beta1, "seed": seed, "scores": watcher.scores[ABLATION_EPOCHS],
                "d_real": history["d_real"], "d_fake": history["d_fake"], "step": history["step"],
                "minutes": watcher.seconds / 60}
            print(label, seed, watcher.scores[ABLATION_EPOCHS], flush=True)
    return results


def positive(text):
    """argparse type: an int >= 1."""
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return int(text)


def main(args):
    """Run one job; a Ctrl-C exits with a message, writing no results."""
    device = gu.get_device(verbose=False)
    dataset = "fashion_mnist" if args.job == "fashion" else "mnist"
    split = gu.mnist_split(dataset=dataset)
    try:
        if args.job in ("dcgan", "upsample", "conditional", "fashion"):
            G, D, watcher, history = dcgan.dcgan_run(split, epochs=EPOCHS, upsample=args.job == "upsample",
                                                    width=args.width, conditional=args.job == "conditional",
                                                    device=device, conditioning=args.conditioning,
                                                    minibatch=args.minibatch, seed=args.seed)
            print(json.dumps({e: s for e, s in watcher.scores.items()}, indent=1))
            print(f"{watcher.seconds / 60:.1f} min on {watcher.trained_on}")
            return
        results = mlp(split, device) if args.job == "mlp" else ablation(split, device)
    except KeyboardInterrupt as stop:             # Ctrl-C: no results of an unfinished run, the sweep stops
        raise SystemExit(f"{args.job} interrupted ({stop}): no results written; run the command again to resume "
                         f"(the DCGAN runs continue from their last checkpoint)") from None
    write_json(Path(gu.__file__).parent / "results" / f"05_{args.job}.json", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", choices=["dcgan", "upsample", "conditional", "mlp", "ablation", "fashion"],
                        required=True)
    parser.add_argument("--width", type=positive, default=16, help="the DCGAN's width (16: the notebook's main runs)")
    parser.add_argument("--conditioning", choices=["concat", "projection"], default="concat",
                        help="conditional: how D reads the label")
    parser.add_argument("--minibatch", type=int, default=16, choices=range(0, 1025), metavar="0..1024",
                        help="conditional: D's minibatch-discrimination kernels")
    parser.add_argument("--seed", type=int, default=0, help="the DCGAN jobs' seed (0: the notebook's main runs; "
                        "the notebook also reloads conditional seeds 1 and 2)")
    parser.add_argument("--threads", type=positive, default=None, help="torch CPU threads (1 on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    main(args)
