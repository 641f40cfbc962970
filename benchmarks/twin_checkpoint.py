"""Checkpoints for the recipe twins (`python -m benchmarks.<model>_reference`), so that a long
side-by-side run survives an interruption and resumes exactly (issue 23, item 3).

A twin run trains a tinylatent model and its PyTorch copy on the same batches; resuming must
restore both models, both optimizers, the batch generator and the global RNGs of both
libraries, or the two sides (and the run itself) stop being reproducible. The file is a
`tl.save` archive (no pickle): PyTorch's tensors are stored as NumPy arrays.

    ckpt = TwinCheckpoint(args.checkpoint, config=vars(args))   # path None: no checkpoints
    saved = ckpt.load() if args.resume else None                # refuses a different config
    ...
    ckpt.save(seed_index=k, progress=step, results=finals, side=s, extra={...})

`add_checkpoint_args(parser)` adds the two flags every twin script takes.

Resuming and running straight through give the same numbers (benchmarks/test_bench_twins.py).
"""
from __future__ import annotations

import os

import numpy as np

import tinylatent as tl
from tinylatent.train import config_differences

try:
    import torch
except ImportError:  # pragma: no cover - the twins skip without PyTorch
    torch = None

# settings a resumed run may change (every other setting, the length of the run included,
# must be the one the checkpoint was written with: the results of finished seeds are kept)
MAY_CHANGE = ("resume", "checkpoint")


def torch_to_numpy(obj):
    """A PyTorch state dict (nested dicts/lists of tensors and numbers) with NumPy arrays."""
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    if isinstance(obj, dict):
        return {k: torch_to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(torch_to_numpy(v) for v in obj)
    return obj


def numpy_to_torch(obj):
    """The inverse of `torch_to_numpy`."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: numpy_to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(numpy_to_torch(v) for v in obj)
    return obj


def pair_state(side) -> dict:
    """Everything a twin pair's training depends on; `side.pair()` gives
    (tl_model, tl_opt, pt_model, pt_opt) and `side.rng` draws the batches."""
    tl_model, tl_opt, pt_model, pt_opt = side.pair()
    return {"tl_model": tl_model.state_dict(), "tl_opt": tl_opt.state_dict(),
            "pt_model": torch_to_numpy(pt_model.state_dict()),
            "pt_opt": torch_to_numpy(pt_opt.state_dict()),
            "batch_rng": side.rng.bit_generator.state, "tl_rng": tl.get_rng_state(),
            "torch_rng": torch.get_rng_state().numpy().copy()}


def load_pair_state(side, state: dict) -> None:
    tl_model, tl_opt, pt_model, pt_opt = side.pair()
    tl_model.load_state_dict(state["tl_model"])
    tl_opt.load_state_dict(state["tl_opt"])
    pt_model.load_state_dict(numpy_to_torch(state["pt_model"]))
    pt_opt.load_state_dict(numpy_to_torch(state["pt_opt"]))
    side.rng.bit_generator.state = state["batch_rng"]
    tl.set_rng_state(state["tl_rng"])
    torch.set_rng_state(torch.from_numpy(state["torch_rng"]))


def add_checkpoint_args(parser) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="save the run here after every evaluation (a tl.save archive)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in --checkpoint, exactly")


class TwinCheckpoint:
    """One twin run's checkpoint file: where it stopped (seed index, steps or epochs done),
    the results of the seeds already finished, and the running pair's full state."""

    def __init__(self, path: str | None, config: dict):
        self.path = path
        self.config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}

    def load(self) -> dict | None:
        """The saved run, or None when there is none yet; a different config is refused."""
        if self.path is None:
            raise SystemExit("--resume needs --checkpoint PATH")
        if not os.path.exists(self.path):
            print(f"no checkpoint at {self.path}: starting from scratch")
            return None
        saved = tl.load(self.path)
        diff = config_differences(saved["config"], self.config, ignore=MAY_CHANGE)
        if diff:
            raise SystemExit(f"{self.path} was written by a different run ({'; '.join(diff)}); "
                             "use another --checkpoint or the same settings")
        print(f"resuming from {self.path}: seed index {saved['seed_index']}, "
              f"{saved['progress']} done", flush=True)
        return saved

    def save(self, seed_index: int, progress: int, results, side, extra: dict | None = None):
        if self.path is None:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tl.save({"config": self.config, "seed_index": seed_index, "progress": progress,
                 "results": np.asarray(results, dtype=np.float64), "pair": pair_state(side),
                 "extra": extra or {}}, self.path)     # atomic: temporary file, then rename
