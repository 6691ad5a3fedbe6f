"""Train the MNIST (or Fashion-MNIST) evaluation classifier of `gan_utils.classifier`, print its
held-out accuracy and save the weights. Reproduce the shipped weights (10 epochs, seed 0; held-out
accuracy offline 0.9835, paper 0.9932) with

    GAN_DATA_DIR=../shared/data        python scripts/train_classifier.py --ship   # offline
    GAN_DATA_DIR=../shared/mnist-full  python scripts/train_classifier.py --ship --threads 1  # paper
    python scripts/train_classifier.py --ship --dataset fashion_mnist --epochs 4           # Fashion-MNIST
"""
import argparse
from pathlib import Path

import torch

from gan_utils.classifier import WEIGHTS_DIR, _save_cached, cache_path, sha256, train_classifier
from gan_utils.mnist import mnist_split


def main(argv=None):
    """Command line: train the classifier, print its held-out accuracy and save the weights."""
    parser = argparse.ArgumentParser(prog="python scripts/train_classifier.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="where to save the weights (default: the per-user cache, with its record)")
    parser.add_argument("--ship", action="store_true", help="save into gan_utils/weights/ (the shipped file)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--max-shift", type=int, default=2, help="random shifts of up to this many pixels")
    parser.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist",
                        help="fashion_mnist: the same CNN for Fashion-MNIST (protocol fashion_paper)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}: an untrained network is no classifier")
    if args.threads:
        torch.set_num_threads(args.threads)
    split = mnist_split(dataset=args.dataset)
    print(f"protocol {split['protocol']}: {split['note']}")
    model, info = train_classifier(split, epochs=args.epochs, seed=args.seed, max_shift=args.max_shift)
    name = f"mnist_cnn_{split['protocol']}.pt"
    out = Path(args.out) if args.out else (WEIGHTS_DIR / name if args.ship else cache_path(split["protocol"]))
    if out == cache_path(split["protocol"]):
        _save_cached(model, info, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out)
    print(f"trained on {info['n_train']} images in {info['seconds']:.0f} s; accuracy on {info['n_held_out']} "
          f"held-out images it never saw: {info['accuracy']:.4f}")
    print(f"saved {out}  sha256 {sha256(out)}")
    return info


if __name__ == "__main__":
    main()
