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
states beside them) under checkpoints/03_ema-<device>/: an interrupted run resumes when the command is run again.
Writes gan_utils/results/03_ema.json; the models at the end go to checkpoints/03_ema-<device>/last.pt.
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

import gan_utils as gu

sys.path.insert(0, str(Path(__file__).resolve().parent))   # experiments/common.py, also when a test loads this file
from common import write_json  # noqa: E402

DECAYS = (0.999, 0.9999)


def positive(text):
    """argparse type: an int >= 1."""
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return int(text)


def device_arg(text):
    """argparse type: a torch device that exists here."""
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"no device {text} here ({torch.cuda.device_count()} CUDA devices)")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"use cpu or cuda[:index], got {text!r}")
    return device


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=positive, default=80)
    parser.add_argument("--every", type=positive, default=2, help="score every this many epochs")
    parser.add_argument("--threads", type=positive, default=None)
    parser.add_argument("--out", default="03_ema.json")
    parser.add_argument("--device", type=device_arg, default="cpu", help="cuda trains faster, with other random numbers than the "
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

    folder = gu.runs.checkpoint_dir() / f"03_ema-{device.type}"   # a CUDA run has other random numbers
    side, kept, done = folder / "averages.pt", {}, {"minutes": 0.0}    # kept: {epoch: state} of the last 2 epochs
    if (folder / "run.pt").is_file():                        # resume: the averages of run.pt's epoch
        kept = load_averages(side, gu.checkpoints.read_checkpoint(folder / "run.pt")["epoch"])
        state = next(iter(kept.values()))
        for name, avg in averages.items():
            avg.load_state_dict(state["averages"][name])
        scores.update(copy.deepcopy(state["scores"])); best.update(copy.deepcopy(state["best"]))
        done["minutes"] = state["minutes"]

    def checkpointed(step, G, D, history):
        callback(step, G, D, history)
        if step > 0 and step % len(data) == 0:                # train_gan saves run.pt at this epoch's end, after
            epoch = step // len(data)                         # this: the previous epoch's state is kept too
            state = copy.deepcopy({"averages": {n: a.state_dict() for n, a in averages.items()}, "scores": scores,
                                   "best": best, "minutes": done["minutes"] + (time.perf_counter() - t0) / 60})
            kept.update({epoch: state})
            for e in [e for e in kept if e < epoch - 1]:
                del kept[e]
            payload = {"epochs": kept, "checksum": gu.checkpoints.checksum(kept)}
            gu.checkpoints.save_atomic(side, lambda f: torch.save(payload, f))

    checkpointed.every = 1                                    # train_gan calls it after every G step
    t0 = time.perf_counter()
    try:
        history = gu.train_gan(G, D, data, noise=gu.make_noise(64, device=device), epochs=args.epochs, opt_g=opt_g,
                               opt_d=opt_d, loss="nonsaturating", callback=checkpointed, progress=False,
                               checkpoint=gu.checkpoints.Checkpoint(folder / "run.pt"))
    except KeyboardInterrupt as stop:                         # Ctrl-C: no results of an unfinished run
        raise SystemExit(f"interrupted ({stop}): no results written; run the command again to resume") from None
    minutes = done["minutes"] + (time.perf_counter() - t0) / 60
    results = {"epochs": args.epochs, "steps": history["step"][-1], "train_minutes": minutes,
               "trained_on": gu.hardware(device), "torch": torch.__version__, "decays": DECAYS,
               "scores": scores, "best": {}}
    for name, b in best.items():
        model = copy.deepcopy(G)
        model.load_state_dict(b["G"])
        e = gu.evaluate_generator(model, split, classifier)
        results["best"][name] = {"epoch": b["epoch"], **gu.evaluation_summary(e)}
        print(name, results["best"][name], flush=True)
    write_json(Path(gu.__file__).parent / "results" / args.out, results)
    last = {"G": G.state_dict(), "D": D.state_dict(), **{n: averaged_G(a).state_dict() for n, a in averages.items()}}
    gu.checkpoints.save_atomic(folder / "last.pt", lambda f: torch.save(last, f))


def load_averages(side, epoch):
    """{epoch: the averages, scores, best and minutes} from `side`, checked; CheckpointError naming it otherwise."""
    retrain = f"delete the folder {side.parent} to train again"
    if not side.is_file():
        raise gu.checkpoints.CheckpointError(f"{side} is missing beside {side.parent / 'run.pt'}: {retrain}")
    state = gu.checkpoints.load_file(side, "averages file")
    if not (isinstance(state, dict) and set(state) == {"epochs", "checksum"}
            and gu.checkpoints.checksum(state["epochs"]) == state["checksum"]):
        raise gu.checkpoints.CheckpointError(f"{side} is damaged (its checksum does not match): {retrain}")
    if epoch not in state["epochs"]:
        raise gu.checkpoints.CheckpointError(f"{side} holds the averages of epochs {sorted(state['epochs'])}, not "
                                             f"of run.pt's epoch {epoch}: {retrain}")
    return {epoch: state["epochs"][epoch]}


if __name__ == "__main__":
    main()
