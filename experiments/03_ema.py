"""Does averaging G's weights fix notebook 03's class imbalance (KL to uniform 0.211 > 0.10)?

    GAN_DATA_DIR=../shared/mnist-full python experiments/03_ema.py --epochs 80 --threads 1

Notebook 03's main run (the MLP GAN, Adam 2e-4 betas (0.5, 0.999), noise 64, batch 128, seed 0,
train[0:50000]) trained again, this time keeping exponential moving averages of G's weights and
BatchNorm statistics (`torch.optim.swa_utils.AveragedModel`, updated after every G step; Yazici et
al. 2019) with decays 0.999 (half-life 693 G steps, 1.8 epochs) and 0.9999 (18 epochs). Averaged
weights need BatchNorm statistics of their own: before it is scored, an average's running mean and
variance are recomputed over 50 batches of 128 noise vectors (`torch.optim.swa_utils.update_bn`). Every
`--every` epochs the trained G and both averages get notebook 03's quick scores (1,000 samples from
fixed noise: modes and KL of the classifier's class histogram, Fréchet distance to 1,000
validation images). The generator with the lowest validation Fréchet distance of each kind is then
evaluated like notebook 03's reported one, on 10,000 samples (`evaluate_generator`).

The same seed and the same random numbers as notebook 03's run: the trained G of this script is
that run's G (up to the epochs trained), so its column is the baseline of the same run.
Checkpointed every epoch (G, D and the optimizers through train_gan; the averages, scores and best
states beside them) under checkpoints/03_ema/: an interrupted run resumes when the command is run again.
Writes experiments/results/03_ema.json; the models at the end go to checkpoints/03_ema/last.pt.
"""
import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

import gan_utils as gu

HERE = Path(__file__).resolve().parent
DECAYS = (0.999, 0.9999)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--every", type=int, default=2, help="score every this many epochs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="03_ema.json")
    parser.add_argument("--device", default="cpu", help="cuda trains faster, with other random numbers than the "
                        "stored CPU run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = gu.mnist_split(device=device)
    classifier = gu.load_classifier(split, device=device, verbose=False)
    f_valid = gu.classifier_features(split["x_valid"][:1000], classifier)
    z_eval = torch.randn(1000, 64, generator=torch.Generator().manual_seed(1)).to(device)
    data = gu.TensorBatches(split["x_train"].to(device), 128)
    G, D, opt_g, opt_d = gu.mlp_gan(noise_dim=64, lr=2e-4, betas=(0.5, 0.999), seed=0, device=device)
    averages = {f"ema {d}": AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True) for d in DECAYS}
    scores, best = {}, {}
    bn_noise = [torch.randn(128, 64, generator=torch.Generator().manual_seed(2 + i)).to(device) for i in range(50)]

    def averaged_G(avg):
        """A copy of the average with BatchNorm statistics recomputed for its own weights."""
        model = copy.deepcopy(avg.module)
        update_bn(bn_noise, model)
        return model

    def callback(step, G, D, history):
        if step > 0:
            for avg in averages.values():
                avg.update_parameters(G)
        if step % (args.every * len(data)) == 0 and step > 0:
            epoch = step // len(data)
            for name, model in (("trained", G), *((n, averaged_G(a)) for n, a in averages.items())):
                s = gu.generator_scores(model, z_eval, f_valid, classifier)
                scores.setdefault(name, {})[str(epoch)] = s
                if s["frechet"] < best.get(name, {}).get("frechet", float("inf")):
                    best[name] = {"epoch": epoch, "frechet": s["frechet"], "kl": s["kl"],
                                  "G": copy.deepcopy(model.state_dict())}
            print(f"epoch {epoch}: " + ", ".join(f"{n} FD {s[str(epoch)]['frechet']:.0f} KL {s[str(epoch)]['kl']:.3f}"
                                                 for n, s in scores.items()), flush=True)

    folder = gu.runs.checkpoint_dir() / "03_ema"
    folder.mkdir(parents=True, exist_ok=True)
    side, done = folder / "averages.pt", {"minutes": 0.0}
    if (folder / "run.pt").is_file() and side.is_file():      # resume: the averages of the last checkpoint
        state = torch.load(side, weights_only=True)
        for name, avg in averages.items():
            avg.load_state_dict(state["averages"][name])
        scores.update(state["scores"]); best.update(state["best"]); done["minutes"] = state["minutes"]

    def checkpointed(step, G, D, history):
        callback(step, G, D, history)
        if step > 0 and step % len(data) == 0:                # train_gan saves run.pt at this epoch's end
            torch.save({"averages": {n: a.state_dict() for n, a in averages.items()}, "scores": scores,
                        "best": best, "minutes": done["minutes"] + (time.perf_counter() - t0) / 60}, side)

    checkpointed.every = 1                                    # train_gan calls it after every G step
    t0 = time.perf_counter()
    gu.train_gan(G, D, data, noise=gu.make_noise(64, device=device), epochs=args.epochs, opt_g=opt_g,
                 opt_d=opt_d, loss="nonsaturating", callback=checkpointed, progress=False,
                 checkpoint=gu.checkpoints.Checkpoint(folder / "run.pt"))
    minutes = done["minutes"] + (time.perf_counter() - t0) / 60
    results = {"epochs": args.epochs, "steps": args.epochs * len(data), "train_minutes": minutes,
               "trained_on": gu.hardware(device), "torch": torch.__version__, "decays": DECAYS,
               "scores": scores, "best": {}}
    for name, b in best.items():
        model = copy.deepcopy(G)
        model.load_state_dict(b["G"])
        e = gu.evaluate_generator(model, split, classifier)
        results["best"][name] = {"epoch": b["epoch"], **gu.evaluation_summary(e)}
        print(name, results["best"][name], flush=True)
    (HERE / "results" / args.out).write_text(json.dumps(results, indent=1))
    torch.save({"G": G.state_dict(), "D": D.state_dict(),
                **{name: averaged_G(a).state_dict() for name, a in averages.items()}}, folder / "last.pt")


if __name__ == "__main__":
    main()
