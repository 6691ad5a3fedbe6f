"""Save and resume a GAN run: both networks, both optimizers, progress, history and every RNG.

A checkpoint is written to a temporary file and renamed, so a crash while saving never leaves a
broken file behind; loading checks everything before it changes anything.
"""
import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
KEYS = ("format", "G", "D", "opt_g", "opt_d", "step", "epoch", "history", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: corrupted, truncated, or made for other models."""


def get_rng_state():
    """Every random state a run uses: Python, NumPy, torch CPU and (if present) CUDA."""
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    """Restore what `get_rng_state` returned."""
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, G, D, opt_g, opt_d, step, epoch, history):
    """Write the whole training state to `path` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "G": G.state_dict(), "D": D.state_dict(),
             "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
             "step": int(step), "epoch": int(epoch), "history": history, "rng": get_rng_state()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _check_model(name, model, saved):
    expected = model.state_dict()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    wrong = [f"{k}: saved {tuple(saved[k].shape)}, model {tuple(v.shape)}"
             for k, v in expected.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"the checkpoint's {name} does not fit this {type(model).__name__} (built with other "
            f"settings?): missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}. "
            f"Build {name} with the settings used when the checkpoint was saved.")


def _check_optimizer(name, opt, saved):
    groups = saved.get("param_groups", [])
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError(f"the checkpoint's {name} was made for other parameters; "
                              f"build the optimizer over the same model as when it was saved")


def load_checkpoint(path, G, D, opt_g=None, opt_d=None, restore_rng=True):
    """Load a checkpoint into G, D (and the optimizers); returns {'step', 'epoch', 'history'}.

    Everything is checked first (readable file, all parts present, shapes that fit): on any
    problem a CheckpointError says what is wrong and nothing is changed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=next(G.parameters()).device, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupted or truncated?): {exc}. "
                              f"Delete it, or load an earlier checkpoint.") from None
    if not isinstance(state, dict) or any(k not in state for k in KEYS) or state["format"] != FORMAT:
        raise CheckpointError(f"{path} is not a gan_utils checkpoint (format {FORMAT}); "
                              f"save checkpoints with gan_utils.save_checkpoint")
    _check_model("G", G, state["G"])
    _check_model("D", D, state["D"])
    if opt_g is not None:
        _check_optimizer("opt_g", opt_g, state["opt_g"])
    if opt_d is not None:
        _check_optimizer("opt_d", opt_d, state["opt_d"])
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    if opt_g is not None:
        opt_g.load_state_dict(state["opt_g"])
    if opt_d is not None:
        opt_d.load_state_dict(state["opt_d"])
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": state["step"], "epoch": state["epoch"], "history": state["history"]}
