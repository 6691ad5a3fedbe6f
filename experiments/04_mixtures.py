"""Notebook 04's mixture benchmark: every trick of `gan_utils.lessons.seeds.TOY_TRICKS` on the 8-mode ring
and the 25-mode grid, 8 seeds each, under one budget of G steps.

    python experiments/04_mixtures.py --mixture ring --threads 1      # the two mixtures can run side by side
    python experiments/04_mixtures.py --mixture grid --threads 1
    python experiments/04_mixtures.py --mixture grid --steps 20000 --tricks PacGAN4 --out 04_grid_20k.json
    python experiments/04_mixtures.py --mixture grid --steps 20000 --tricks R1 --ema 0.999 --lr-decay --out 04_grid_20k.json

The toy GAN (G 2 -> 128 -> 128 -> 128 -> 2 ReLU, D three hidden layers of 128 with LeakyReLU 0.2,
batch 256, z in R^2) with each trick's settings; all 8 seeds of a trick train as one batched model
(`gan_utils.lessons.seeds.train_toy_seeds`). Every `--record-every` G steps each seed's G draws 2,500 samples from
fixed noise and `gan_utils.mode_metrics` scores them: modes covered (>= 1 high-quality sample),
modes with >= 20 samples, % high quality (within 3 std of a centre), KL(q || uniform).
--ema d and --lr-decay add the run-long settings of `train_toy_seeds` to each trick (an average of G's
weights, a linear decay of the learning rates to 0); the entry's name says so, e.g. "R1 + EMA 0.999".
Results go to gan_utils/results/04_<mixture>.json (or --out), one entry per mixture and trick,
written as soon as it is done: rerunning the command skips the entries already there.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

import gan_utils as gu
from gan_utils.lessons import seeds
from gan_utils.steps import count_d_steps

sys.path.insert(0, str(Path(__file__).resolve().parent))   # experiments/common.py, also when a test loads this file
from common import read_json, write_json  # noqa: E402

MIXTURES = {"ring": (gu.ring_centers(8, 2.0), 0.02), "grid": (gu.grid_centers(5, 2.0), 0.05)}
DEFAULT_TRICKS = [t for t in seeds.TOY_TRICKS if t != "minibatch discrimination"]


def run(mixture, trick, seed_ids, steps, record_every, n_eval=2500, extra=None):
    centers, std = MIXTURES[mixture]
    settings = {**seeds.TOY_TRICKS[trick], **(extra or {})}
    curve = {}

    def record(step, s, G):
        curve.setdefault(str(step), []).append(seeds.mixture_scores(G, centers, std, seed_ids[s], n_eval)[1])

    t0 = time.perf_counter()
    Gs, _, history = seeds.train_toy_seeds(seed_ids, centers, std, steps, trick=settings, record=record,
                                          record_every=record_every)
    seconds = time.perf_counter() - t0
    d_steps = count_d_steps(settings.get("k", 1), steps)
    samples = seeds.mixture_scores(Gs[0], centers, std, seed_ids[0])[0][:500]
    points = [[round(v, 3) for v in p] for p in samples.tolist()]
    final = curve.get(str(steps)) or [seeds.mixture_scores(G, centers, std, s, n_eval)[1]   # steps not a multiple
                                       for G, s in zip(Gs, seed_ids)]                         # of record_every
    summary = {key: [m[key] for m in final] for key in final[0]}
    return {"mixture": mixture, "trick": name(trick, extra), "base_trick": trick, "extra": extra or {},
            "seeds": list(seed_ids), "steps": steps, "d_steps": d_steps, "seconds": seconds, "curve": curve,
            "final": summary, "samples_seed0": points}


def name(trick, extra):
    """The entry's trick name: the TOY_TRICKS name and the run-long settings added to it."""
    return trick + (f" + EMA {extra['ema']}" if extra and extra.get("ema") else "") + \
        (" + lr decay" if extra and extra.get("lr_decay") else "")


def positive(text):
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mixture", choices=sorted(MIXTURES), nargs="+", default=sorted(MIXTURES))
    parser.add_argument("--tricks", nargs="+", default=DEFAULT_TRICKS, choices=list(seeds.TOY_TRICKS))
    parser.add_argument("--seeds", type=positive, default=8)
    parser.add_argument("--steps", type=positive, default=5000)
    parser.add_argument("--record-every", type=positive, default=500)
    parser.add_argument("--threads", type=positive, default=None)
    parser.add_argument("--ema", type=float, default=None, help="average G's weights with this decay")
    parser.add_argument("--lr-decay", action="store_true", help="lower both learning rates linearly to 0")
    parser.add_argument("--out", default=None, help="file name under gan_utils/results/ (default 04_<mixture>.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for mixture in args.mixture:
        out = Path(gu.__file__).parent / "results" / (args.out or f"04_{mixture}.json")
        extra = {key: value for key, value in (("ema", args.ema), ("lr_decay", args.lr_decay)) if value}
        for trick in args.tricks:
            key = f"{mixture}/{name(trick, extra)}/{args.steps}"
            if key in read_json(out, {}):
                continue
            try:
                r = run(mixture, trick, list(range(args.seeds)), args.steps, args.record_every, extra=extra)
            except KeyboardInterrupt as stop:            # Ctrl-C: nothing recorded, the sweep stops here
                raise SystemExit(f"{key} interrupted ({stop}): no result written for it") from None
            r.update(hardware=gu.hardware("cpu"), torch=torch.__version__, load=os.getloadavg()[0])
            f = r["final"]
            print(f"{key}: modes {sum(f['modes_covered']) / args.seeds:.2f}, HQ "
                  f"{100 * sum(f['high_quality']) / args.seeds:.1f}%, {r['seconds'] / 60:.1f} min", flush=True)
            write_json(out, {**read_json(out, {}), key: r})

if __name__ == "__main__":
    main()
