"""How fast is gan_utils' training loop? A benchmark of the course's MNIST MLP GAN.

The same GAN (gan_utils.MLPGenerator() and MLPDiscriminator() with their defaults, 64-d normal
noise, batch 128, Adam lr 2e-4 betas (0.5, 0.999), non-saturating BCE loss, k = 1) is trained
for the same number of generator steps three ways, each from freshly built models with the same
seed:

  A  gan_utils   `gan_utils.train_gan` over `gan_utils.TensorBatches` of the images that
                 `gan_utils.mnist.load_images` preloaded into one tensor (progress=False).
  B  handwritten the limit: a minimal loop over the same preloaded tensor, same models,
                 optimizers and loss functions (randperm indexing, D step, G step, nothing else).
                 A and B consume the random numbers in the same order, so after the same number
                 of steps their parameters must be bitwise equal; the script checks this.
  C  tutorial    the usual tutorial style: a torchvision MNIST dataset with ToTensor + Normalize
                 (one PIL image per sample), DataLoader(batch_size=128, shuffle=True), and
                 `.item()` on both losses every step, appended to Python lists.

The variants run interleaved in rounds (A, B, C, A, B, C, ...) in one process, so that a slow
moment of a shared machine hits all three alike; the script reports the median ms per generator
step of each and two ratios:

  r1 = median A / median B   (gan_utils' overhead over the hand-written limit; target <= 1.05)
  r2 = median C / median A   (how much slower the tutorial style is;          target >= 1.5)

It then trains (A) for --memory-epochs epochs and prints the process's memory after every epoch
(resident set size from /proc/self/status, and torch.cuda.max_memory_allocated on a GPU), to show
that nothing accumulates from epoch to epoch.

On a GPU a fourth variant runs in the same rounds:

  F  fast        the fast path, `gan_utils.fast.fast_steps` (the D and G steps captured once as
                 CUDA graphs), in the loop of (A): TensorBatches, the four logged values stacked on
                 the device every step and copied to the host every 25 steps. Its time per step
                 leaves out the one-off capture (warm-up and recording, printed separately), which
                 is paid once per train_gan call: under 0.1% of notebook 03's 250 epochs.

  r3 = median A / median F   (how many times faster the fast path is;      target >= 5)

and the DCGAN of notebook 05 (gan_utils.DCGANGenerator(), DCGANDiscriminator() at 28 px, 100-d
noise, images in [-1, 1]) runs the same loop eagerly (gan_utils.steps.eager_steps) and fast:

  r4 = median eager / median fast, DCGAN                                   (target >= 2)

The last line is always   gan_utils_vs_handwritten=<r1> tutorial_vs_gan_utils=<r2>, followed on
a GPU by             gpu_fast_vs_eager=<r3> gpu_dcgan_fast_vs_eager=<r4>
(--dcgan measures the DCGAN on a CPU too, eagerly only: the fast path is the eager one there).

Data: MNIST idx files under <root>/MNIST/raw (root: --root, else $GAN_DATA_DIR, else the
repository's data/). The training split is used when present, else the 10,000-image test split
(gan_utils.mnist.load_images warns). train_gan runs whole epochs, so a round of --steps G steps uses
the first steps * 128 images as its data set (one epoch); a --steps beyond one epoch of the whole
split is rounded to whole epochs. All three variants see the same images.

Threads: on a 2-core machine that other processes also use, torch with 2 threads can be several
times slower than with 1 (each parallel region waits for a descheduled thread). The default is
2 threads, as for the course; --threads 1 gives faster and steadier numbers on a busy machine.

Usage:
    GAN_DATA_DIR=/path/to/data python benchmarks/train_speed.py             # about 3 min on 2 busy CPU cores
    python benchmarks/train_speed.py --quick                                # about 1 min
    python benchmarks/train_speed.py --steps 78 --repeats 9 --memory-epochs 20 --threads 1 --device cpu
    python benchmarks/train_speed.py --quick --device cuda                  # on a GPU: A, B, C, F and the DCGAN
This is a benchmark, not a test: timings on a shared machine are noisy, ratios less so.
"""
import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

import gan_utils
from gan_utils.fast import fast_steps
from gan_utils.mnist import load_images, read_idx
from gan_utils.steps import eager_steps

BATCH = 128
NOISE_DIM = 64
LR, BETAS = 2e-4, (0.5, 0.999)


# ----------------------------------------------------------------------------- set-up
def build(seed, device):
    """Fresh models and Adam optimizers, identical for every variant (same seed)."""
    gan_utils.seed_everything(seed)
    G = gan_utils.MLPGenerator(noise_dim=NOISE_DIM).to(device)
    D = gan_utils.MLPDiscriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    return G, D, opt_g, opt_d


class RawMNIST(torchvision.datasets.MNIST):
    """torchvision.datasets.MNIST read from the two idx files of one split.

    torchvision 0.29's own constructor needs all four raw files decompressed (or a download),
    which an offline machine with only the test split's .gz files does not have. This subclass
    only replaces the constructor: indexing is torchvision's own MNIST.__getitem__, i.e. per
    sample uint8 array -> PIL image -> transform (ToTensor, Normalize), exactly as in a tutorial.
    """

    def __init__(self, images_file, labels_file, transform=None):
        torchvision.datasets.VisionDataset.__init__(self, str(Path(images_file).parent), transform=transform)
        self.train = False
        self.data = read_idx(images_file)             # (N, 28, 28) uint8
        self.targets = read_idx(labels_file).long()   # (N,)


def tutorial_dataset(info):
    """The tutorial's dataset over the same split that load_images used."""
    raw = Path(info["root"]) / "MNIST" / "raw"
    prefix = "train" if info["split"] == "train" else "t10k"
    files = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = raw / f"{prefix}-{kind}"
        files.append(name if name.is_file() else name.with_name(name.name + ".gz"))
    # ToTensor scales to [0, 1]; Normalize((0,), (1,)) keeps that range, which the course's sigmoid
    # generator needs, at the cost of the usual Normalize((0.5,), (0.5,)) (a subtract and a divide).
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.0,), (1.0,))])
    return RawMNIST(*files, transform=transform)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the three variants
def run_gan_utils(images, steps, seed, device):
    """(A) the course's loop. Returns the models after `steps` G steps."""
    noise = gan_utils.make_noise(NOISE_DIM, device=device)   # before build(): it draws one test sample
    G, D, opt_g, opt_d = build(seed, device)
    data = gan_utils.TensorBatches(images, BATCH)
    epochs = steps // len(data)
    gan_utils.train_gan(G, D, data, noise=noise, epochs=epochs,
                        opt_g=opt_g, opt_d=opt_d, loss="nonsaturating", progress=False)
    return G, D


def run_handwritten(images, steps, seed, device):
    """(B) the limit: the same arithmetic as (A) with nothing around it."""
    G, D, opt_g, opt_d = build(seed, device)
    n_batches = len(images) // BATCH
    step = 0
    while step < steps:
        order = torch.randperm(len(images), device=device)
        for b in range(n_batches):
            real = images[order[b * BATCH:(b + 1) * BATCH]]
            fake = G(torch.randn(BATCH, NOISE_DIM, device=device)).detach()
            loss_d = gan_utils.discriminator_loss(D(real), D(fake))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = gan_utils.generator_loss_nonsaturating(D(G(torch.randn(BATCH, NOISE_DIM, device=device))))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            step += 1
            if step == steps:
                break
    return G, D


def run_tutorial(dataset, steps, seed, device):
    """(C) the typical tutorial: DataLoader of PIL images, BCEWithLogitsLoss, .item() every step."""
    G, D, opt_g, opt_d = build(seed, device)
    # drop_last=True so that every step sees 128 images, as in (A) and (B); num_workers is left at
    # its default 0, as tutorials do (and on 2 cores worker processes would compete with training).
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    criterion = torch.nn.BCEWithLogitsLoss()
    losses_d, losses_g = [], []
    step = 0
    while step < steps:
        for real, _ in loader:
            real = real.to(device)
            ones = torch.ones(real.size(0), 1, device=device)
            zeros = torch.zeros(real.size(0), 1, device=device)
            # discriminator
            fake = G(torch.randn(real.size(0), NOISE_DIM, device=device))
            loss_d = criterion(D(real), ones) + criterion(D(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # generator
            fake = G(torch.randn(real.size(0), NOISE_DIM, device=device))
            loss_g = criterion(D(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            losses_d.append(loss_d.item())
            losses_g.append(loss_g.item())
            step += 1
            if step == steps:
                break
    return G, D


def logged_loop(steps, G, D, data, epochs, critic=False):
    """train_gan's loop around given step functions steps = (d_fn, g_fn) (`eager_steps`,
    `fast_steps`): every G step the four logged values are stacked on the device, every 25 steps
    copied to the host. Returns the host rows."""
    (d_fn, g_fn), pending, rows = steps, [], []
    to_prob = (lambda s: s) if critic else torch.sigmoid
    for _ in range(epochs):
        for real in data:
            loss_d, real_out, fake_out = d_fn(real, G, D)
            loss_g = g_fn(real, G, D)
            pending.append(torch.stack([loss_d, loss_g, to_prob(real_out).mean(), to_prob(fake_out).mean()]))
            if len(pending) == 25:
                rows += torch.stack(pending).cpu().tolist()
                pending.clear()
    return rows + (torch.stack(pending).cpu().tolist() if pending else [])


def run_fast(images, steps, seed, device, capture_seconds):
    """(F) the fast path in train_gan's loop. The capture is timed apart and appended to
    capture_seconds; the returned models are those after `steps` G steps."""
    noise = gan_utils.make_noise(NOISE_DIM, device=device)
    G, D, opt_g, opt_d = build(seed, device)
    data = gan_utils.TensorBatches(images, BATCH)
    sync(device)
    start = time.perf_counter()
    fast = fast_steps(G, D, opt_g, opt_d, noise, "nonsaturating", images[:BATCH], verbose=False)
    sync(device)
    capture_seconds.append(time.perf_counter() - start)
    logged_loop(fast, G, D, data, steps // len(data))
    return G, D


def dcgan_speed(images, steps, repeats, seed, device, fast=True):
    """ms per G step of the 28-px DCGAN, eager (d_step, g_step) and, if fast, with fast_steps,
    interleaved in rounds; each round from fresh models. Returns {variant: [ms per round]}."""
    images = images[:steps * BATCH] * 2 - 1   # [0, 1] -> [-1, 1] for the tanh generator
    data = gan_utils.TensorBatches(images, BATCH)
    noise = gan_utils.make_noise(100, device=device)
    loss = gan_utils.get_loss("nonsaturating")
    ms = {"eager": [], "fast": []} if fast else {"eager": []}
    for r in range(repeats + 1):                                # round 0 is a warm-up
        for variant in ms:
            gan_utils.seed_everything(seed)
            G, D = gan_utils.DCGANGenerator().to(device), gan_utils.DCGANDiscriminator().to(device)
            opt_g, opt_d = gan_utils.make_optimizer(G), gan_utils.make_optimizer(D)
            if variant == "fast":
                step_fns = fast_steps(G, D, opt_g, opt_d, noise, loss, images[:BATCH], verbose=False)
            else:
                step_fns = eager_steps(G, D, opt_g, opt_d, noise, loss)
            seconds, _, _ = timed(logged_loop, step_fns, G, D, data, 1, device=device)
            if r > 0:
                ms[variant].append(1000 * seconds / len(data))
    return ms


def timed(fn, *args, device):
    """(wall seconds, CPU seconds of this process, fn's result). CPU time counts only the time
    this process ran, so it is less disturbed by other processes than wall time is."""
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn(*args)
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, result


# ----------------------------------------------------------------------------- memory
def rss_mb():
    """(current, peak) resident set size of this process in MiB (Linux /proc; else getrusage peak)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak /= 1024 * 1024 if sys.platform == "darwin" else 1024   # bytes on macOS, KiB on Linux
        return float("nan"), peak


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_run(images, epochs, seed, device):
    """Train (A) for `epochs` epochs in one train_gan call; record memory at every epoch's end."""
    noise = gan_utils.make_noise(NOISE_DIM, device=device)
    G, D, opt_g, opt_d = build(seed, device)
    data = gan_utils.TensorBatches(images, BATCH)
    rows = []

    def record(step, G, D, history):
        rss, peak = rss_mb()
        cuda = (torch.cuda.memory_allocated(device) / 2**20, torch.cuda.max_memory_allocated(device) / 2**20) \
            if device.type == "cuda" else (None, None)
        rows.append((step // len(data), rss, peak, *cuda, len(history["step"])))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reset_peak_rss()
    # a callback without `every`: train_gan calls it before training and after every epoch
    gan_utils.train_gan(G, D, data, noise=noise, epochs=epochs,
                        opt_g=opt_g, opt_d=opt_d, progress=False, callback=record)
    return rows


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=62,
                   help="G steps per variant per round (default 62: one epoch of 8,000 images, as in "
                        "notebook 03 offline); the data set is the first steps*128 "
                        "images, or whole epochs of the split beyond that")
    p.add_argument("--repeats", type=int, default=7, help="rounds of (A, B, C) (default 7)")
    p.add_argument("--memory-epochs", type=int, default=8,
                   help="epochs (of the same data set) of the memory run of (A), 0 to skip (default 8)")
    p.add_argument("--quick", action="store_true", help="20 steps, 3 rounds, 3 memory epochs")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--root", default=None, help="data root holding MNIST/raw (default: $GAN_DATA_DIR or data/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dcgan", action="store_true", help="measure the DCGAN on a CPU too (always on a GPU)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.memory_epochs = 20, 3, 3
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be at least 1")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the test-split fallback is reported below instead
        images, _, info = load_images("mnist", train=True, root=args.root, device=device, download=False)
    dataset = tutorial_dataset(info)
    per_epoch = len(images) // BATCH
    if args.steps <= per_epoch:   # one epoch of the first steps*128 images
        epochs, steps = 1, args.steps
        images, dataset.data, dataset.targets = (images[:steps * BATCH], dataset.data[:steps * BATCH],
                                                 dataset.targets[:steps * BATCH])
    else:                         # whole epochs of the split
        epochs = round(args.steps / per_epoch)
        steps = epochs * per_epoch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device {device} ({name}), torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, python {platform.python_version()}")
    print(f"data: MNIST {info['split']} split, {info['n']} images from {info['root']}; "
          f"{steps} G steps per variant per round ({epochs} epoch(s) of {len(images)} images in "
          f"batches of {BATCH}), "
          f"{args.repeats} rounds, seed {args.seed}")

    # Warm-up, not timed: first calls pay for kernel selection, allocator growth and lazy imports.
    run_handwritten(images, 10, args.seed, device)
    run_tutorial(dataset, 10, args.seed, device)

    variants = [("A gan_utils", lambda: run_gan_utils(images, steps, args.seed, device)),
                ("B handwritten", lambda: run_handwritten(images, steps, args.seed, device)),
                ("C tutorial", lambda: run_tutorial(dataset, steps, args.seed, device))]
    gpu = device.type == "cuda"
    capture_seconds = []
    if gpu:   # the fast path: CUDA graphs (on a CPU it is the eager loop of A)
        variants.append(("F fast", lambda: run_fast(images, steps, args.seed, device, capture_seconds)))
        run_fast(images, min(steps, 10), args.seed, device, [])   # warm-up, not timed
    ms = {label: [] for label, _ in variants}       # wall-clock ms per G step, one value per round
    cpu_ms = {label: [] for label, _ in variants}   # CPU ms per G step
    for r in range(args.repeats):
        finals = {}
        for label, fn in variants:
            seconds, cpu_seconds, finals[label] = timed(fn, device=device)
            if label == "F fast":   # the one-off capture is reported apart, not per step
                seconds, cpu_seconds = seconds - capture_seconds[-1], cpu_seconds - capture_seconds[-1]
            ms[label].append(1000 * seconds / steps)
            cpu_ms[label].append(1000 * cpu_seconds / steps)
        print(f"round {r + 1}/{args.repeats}: " + "  ".join(f"{lab.split()[0]} {ms[lab][-1]:6.2f}" for lab in ms)
              + "  ms/step", flush=True)
        if r == 0:   # same seed, same random draws, same arithmetic: A must end exactly where B ends
            same = all(torch.equal(a, b) for a, b in zip(finals["A gan_utils"][0].state_dict().values(),
                                                          finals["B handwritten"][0].state_dict().values()))
            print(f"  A and B end with bitwise-equal generators: {same}")
            if gpu:   # F draws the same numbers; capturable Adam rounds differently, so compare loosely
                diff = max(float((a.float() - f.float()).abs().max()) for a, f in zip(
                    finals["A gan_utils"][0].state_dict().values(), finals["F fast"][0].state_dict().values()))
                print(f"  A and F: largest difference of G's parameters and buffers {diff:.2e}")

    med = {label: statistics.median(v) for label, v in ms.items()}
    cpu_med = {label: statistics.median(v) for label, v in cpu_ms.items()}
    base, cpu_base = med["B handwritten"], cpu_med["B handwritten"]
    print(f"\n{'variant':<15}{'median ms/step':>16}{'min':>9}{'max':>9}{'vs B':>8}"
          f"{'CPU ms/step':>14}{'CPU vs B':>10}")
    for label, values in ms.items():
        print(f"{label:<15}{med[label]:>16.2f}{min(values):>9.2f}{max(values):>9.2f}{med[label] / base:>8.2f}"
              f"{cpu_med[label]:>14.2f}{cpu_med[label] / cpu_base:>10.2f}")
    r1 = med["A gan_utils"] / med["B handwritten"]
    r2 = med["C tutorial"] / med["A gan_utils"]
    print(f"r1 = A / B = {r1:.3f} (target <= 1.05)   r2 = C / A = {r2:.3f} (target >= 1.5)")
    paired = [(statistics.median(a / b for a, b in zip(ms["A gan_utils"], ms["B handwritten"]))),
              (statistics.median(c / a for c, a in zip(ms["C tutorial"], ms["A gan_utils"])))]
    print(f"medians of the per-round ratios (less sensitive to a slow round): A/B {paired[0]:.3f}, "
          f"C/A {paired[1]:.3f}")
    gpu_line = ""
    if gpu:
        r3 = med["A gan_utils"] / med["F fast"]
        print(f"r3 = A / F = {r3:.2f} (target >= 5); F's capture (3 warm-up steps and recording) took "
              f"{statistics.median(capture_seconds):.2f} s per train_gan call, not counted above")
        gpu_line = f" gpu_fast_vs_eager={r3:.2f}"
    if gpu or args.dcgan:
        dc = dcgan_speed(images, min(steps, per_epoch), args.repeats, args.seed, device, fast=gpu)
        dc_med = {v: statistics.median(x) for v, x in dc.items()}
        print(f"\nDCGAN 28 px, {min(steps, per_epoch)} G steps x {args.repeats} rounds: "
              + "  ".join(f"{v} {m:.2f} ms/step (min {min(dc[v]):.2f})" for v, m in dc_med.items()))
        if gpu:
            r4 = dc_med["eager"] / dc_med["fast"]
            print(f"r4 = eager / fast (DCGAN) = {r4:.2f} (target >= 2)")
            gpu_line += f" gpu_dcgan_fast_vs_eager={r4:.2f}"

    if args.memory_epochs > 0:
        print(f"\nmemory: (A) for {args.memory_epochs} epochs in one train_gan call, after each epoch")
        rows = memory_run(images, args.memory_epochs, args.seed, device)
        cuda = device.type == "cuda"
        print(f"{'epoch':>5}{'RSS MiB':>10}{'peak RSS MiB':>14}" + (f"{'CUDA MiB':>10}{'CUDA peak':>11}" if cuda else "")
              + f"{'history rows':>14}")
        for epoch, rss, peak, cur, cpeak, hist in rows:
            print(f"{epoch:>5}{rss:>10.1f}{peak:>14.1f}" + (f"{cur:>10.1f}{cpeak:>11.1f}" if cuda else "")
                  + f"{hist:>14}")
        # growth: compare the end of the run with the end of epoch 2 (epoch 1 creates Adam's state
        # and the allocator's pools settle during epoch 2), or of epoch 1 in a short run
        if len(rows) >= 3:
            # The current RSS wobbles by a few MiB as malloc returns and takes pages; the peak only
            # rises if some epoch needs more memory than all before it, so its growth is the figure.
            later = rows[2 if len(rows) >= 5 else 1:]
            first, last = later[0], later[-1]
            rss = [row[1] for row in later]
            print(f"growth from epoch {first[0]} to {last[0]}: peak RSS {last[2] - first[2]:+.1f} MiB "
                  f"({(last[2] - first[2]) / (last[0] - first[0]):+.2f} MiB/epoch)"
                  + (f", CUDA peak {last[4] - first[4]:+.1f} MiB" if cuda else "")
                  + f"; current RSS stays within {min(rss):.1f}..{max(rss):.1f} MiB")

    print(f"gan_utils_vs_handwritten={r1:.2f} tutorial_vs_gan_utils={r2:.2f}")
    if gpu_line:
        print(gpu_line.strip())


if __name__ == "__main__":
    main()
