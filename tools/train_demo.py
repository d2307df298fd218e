#!/usr/bin/env python3
"""Train the bundled demo checkpoints under ``resources/demo/`` (deterministic, CPU, < 1 min).

Data: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
(``apt-get install -y dataset-fashion-mnist``; files in
``/usr/share/datasets/fashion-mnist``).  The model is ``resources/demo/demo_model.py``
(784 → 128 ReLU → 64 ``embed`` → ``embed_norm`` LayerNorm → 10 ``classifier``).

Three real training runs, all from the same seed and initialisation:

``healthy.safetensors``
    Adam, lr 1e-3, 1 500 steps of batch 128: ~87 % validation accuracy, a
    spread-out 64-d embedding.
``collapsed.safetensors``
    SGD with momentum 0.9 at lr 1.0 from step 0 (no warm-up, no gradient
    clipping: about 50× the learning rate this model tolerates from scratch).
    The gradients explode within a few dozen steps, the updates drive every
    hidden ReLU negative for every input (dead ReLUs), so the embedding layer
    sees the zero vector and ``embed_norm`` outputs the same point for every
    image; the head predicts one class.  Steps whose loss or gradient is not
    finite are skipped, as AMP's GradScaler does, so the weights stay finite.
``series/step-000100.safetensors`` … ``step-000700``
    One Adam run: lr 1e-3 for 200 steps, then an exponential learning-rate
    warm-up to 1.0 (far too high) reached at step 600 and held.  The embedding's
    effective rank falls from ~30 to single digits once the LR passes ~1e-2
    (step 300 onwards), and accuracy drops at the peak: collapse beginning part-way.
    Its training log, ``series/train_log.jsonl`` (every 10 steps: the mean
    batch loss, the learning rate, the mean gradient norm and the skipped
    steps), is what ``embscope series`` draws under the metrics.

Validation data: 100 test images of each class (the first 100 of each class in
the test split), written as ``fashion_val.npy`` (float32, N×784, pixels / 255)
and ``fashion_val.csv`` (id, label, parent, text).

Run from the repository root::

    python tools/train_demo.py            # writes resources/demo/…
    python tools/train_demo.py --check    # also re-verifies the written files
    python tools/train_demo.py --series-log   # replays the series run: its log only, checked
                                               # against the shipped checkpoints

The script checks what it made (accuracy, collapse ratio, rank trend) and exits
non-zero if a checkpoint does not show what it is meant to show.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"
DATASET_DIR = Path("/usr/share/datasets/fashion-mnist")
SEED = 0
BATCH = 128
VAL_PER_CLASS = 100
SERIES_STEPS = (100, 200, 300, 400, 500, 600, 700)
#: The series run's log: one record per this many steps (means over them).
LOG_EVERY = 10


def load_demo_model_module():
    """Import ``resources/demo/demo_model.py`` from its path (it is not a package module)."""
    spec = importlib.util.spec_from_file_location("demo_model", DEMO / "demo_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×784 float32 in [0, 1]) and labels (int64) of ``split`` ("train" or "t10k")."""
    images = DATASET_DIR / f"{split}-images-idx3-ubyte.gz"
    labels = DATASET_DIR / f"{split}-labels-idx1-ubyte.gz"
    if not images.exists():
        sys.exit(f"train_demo: {images} not found; install it with `apt-get install -y dataset-fashion-mnist`")
    x = _read_idx(images, 16).reshape(-1, 784).astype(np.float32) / 255.0
    y = _read_idx(labels, 8).astype(np.int64)
    return x, y


def validation_rows(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` test indices of every class, in file order."""
    rows = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    return np.sort(np.concatenate(rows))


def embed_and_predict(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``embed_norm`` outputs (float64) and predicted classes, via a forward hook."""
    captured = {}
    hook = model.embed_norm.register_forward_hook(lambda _m, _i, out: captured.__setitem__("z", out.detach()))
    try:
        model.eval()
        with torch.inference_mode():
            logits = model(torch.from_numpy(x))
    finally:
        hook.remove()
        model.train()
    return captured["z"].double().numpy(), logits.argmax(1).numpy()


def collapse_ratio(z: np.ndarray) -> float:
    """Max pairwise L2 distance / mean L2 norm (exact; < 1e-2 means a point)."""
    sq = (z * z).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    return float(np.sqrt(d2.max()) / np.linalg.norm(z, axis=1).mean())


def effective_rank(z: np.ndarray) -> float:
    """Roy & Vetterli effective rank of the centred matrix (1.0 for a point)."""
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    if s.sum() <= 1e-12 * max(1.0, np.abs(z).max()):
        return 1.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def describe(model, x_val, y_val) -> dict:
    z, pred = embed_and_predict(model, x_val)
    counts = np.bincount(pred, minlength=10)
    return {
        "accuracy": float((pred == y_val).mean()),
        "modal_share": float(counts.max() / len(pred)),
        "collapse_ratio": collapse_ratio(z),
        "effective_rank": effective_rank(z),
        "max_abs_weight": float(max(p.detach().abs().max() for p in model.parameters())),
    }


def save(model: torch.nn.Module, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            sys.exit(f"train_demo: {path.name}: {name} is not finite; refusing to save")
    save_file(state, str(path), metadata={k: str(v) for k, v in meta.items()})


def train(
    make_optimizer,
    lr_at,
    steps: int,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    on_step=None,
):
    """One deterministic run; ``lr_at(step)`` sets the LR before step ``step`` (1-based)."""
    dm = load_demo_model_module()
    torch.manual_seed(SEED)
    model = dm.build_model()
    optimizer = make_optimizer(model)
    batches = torch.Generator().manual_seed(SEED)
    skipped = 0
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        idx = torch.randint(0, len(x_train), (BATCH,), generator=batches)
        loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        # Skip non-finite steps (as AMP's GradScaler does) so a diverging run
        # keeps finite weights; nothing else is done to rescue it (no clipping).
        grads_finite = all(torch.isfinite(p.grad).all() for p in model.parameters())
        ok = bool(torch.isfinite(loss)) and grads_finite
        if ok:
            optimizer.step()
        else:
            skipped += 1
        if on_step is not None:
            # Read after the step: the values only, nothing that changes the run.
            grad_norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())))
            on_step(step, model, float(loss.detach()), grad_norm, ok)
    return model, skipped


class SeriesLog:
    """The series run's log, one record per :data:`LOG_EVERY` steps (means of the finite values)."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self._losses: list[float] = []
        self._norms: list[float] = []
        self._skipped = 0

    def add(self, step: int, loss: float, grad_norm: float, ok: bool) -> None:
        if ok:
            self._losses.append(loss)
            self._norms.append(grad_norm)
        else:
            self._skipped += 1
        if step % LOG_EVERY == 0:
            record = {"step": step, "learning_rate": series_lr(step), "skipped_steps": self._skipped}
            if self._losses:
                record["loss"] = round(float(np.mean(self._losses)), 6)
                record["grad_norm"] = round(float(np.mean(self._norms)), 6)
            self.records.append(record)
            self._losses, self._norms, self._skipped = [], [], 0

    def write(self, path: Path) -> None:
        path.write_text("".join(json.dumps(r) + "\n" for r in self.records), encoding="utf-8")


def series_lr(step: int) -> float:
    """lr 1e-3 to step 200, exponential warm-up to 1.0 at step 600, then held."""
    if step <= 200:
        return 1e-3
    return float(min(1.0, 1e-3 * (1.0 / 1e-3) ** ((step - 200) / 400)))


def write_validation(x_val: np.ndarray, y_val: np.ndarray, rows: np.ndarray, dm) -> None:
    np.save(DEMO / "fashion_val.npy", np.ascontiguousarray(x_val, dtype=np.float32))
    with open(DEMO / "fashion_val.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "parent", "text"])
        for row, label in zip(rows, y_val, strict=False):
            name = dm.CLASS_NAMES[label]
            writer.writerow([f"test-{row:05d}", name, dm.PARENT_OF[name], f"{name} #{row}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="reload the written files and verify")
    parser.add_argument(
        "--series-log",
        action="store_true",
        help="replay only the series run and write its train_log.jsonl, after checking that the replay "
        "reproduces the shipped series checkpoints",
    )
    args = parser.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one thread: same float summation order on every run
    dm = load_demo_model_module()

    x_train, y_train = load_fashion("train")
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    if args.series_log:
        return replay_series_log(xt, yt)
    x_test, y_test = load_fashion("t10k")
    rows = validation_rows(y_test, VAL_PER_CLASS)
    x_val, y_val = x_test[rows], y_test[rows]
    write_validation(x_val, y_val, rows, dm)

    report: dict[str, dict] = {}

    healthy, _ = train(lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), lambda s: 1e-3, 1500, xt, yt)
    report["healthy"] = describe(healthy, x_val, y_val)
    save(
        healthy,
        DEMO / "healthy.safetensors",
        {"recipe": "Adam lr=1e-3, 1500 steps, batch 128", "step": 1500, "seed": SEED},
    )

    collapsed, skipped = train(
        lambda m: torch.optim.SGD(m.parameters(), lr=1.0, momentum=0.9),
        lambda s: 1.0,
        300,
        xt,
        yt,
    )
    report["collapsed"] = describe(collapsed, x_val, y_val)
    report["collapsed"]["skipped_steps"] = skipped
    save(
        collapsed,
        DEMO / "collapsed.safetensors",
        {
            "recipe": "SGD momentum 0.9, lr=1.0 from step 0, no warm-up, no clipping, 300 steps",
            "step": 300,
            "seed": SEED,
            "skipped_nonfinite_steps": skipped,
        },
    )

    series_dir = DEMO / "series"
    for old in series_dir.glob("step-*.safetensors"):
        old.unlink()

    log = SeriesLog()

    def snapshot(step, model, loss, grad_norm, ok):
        log.add(step, loss, grad_norm, ok)
        if step in SERIES_STEPS:
            report[f"series step {step}"] = {"lr": series_lr(step), **describe(model, x_val, y_val)}
            save(
                model,
                series_dir / f"step-{step:06d}.safetensors",
                {
                    "recipe": "Adam, lr 1e-3 then warm-up to 1.0 at step 600",
                    "step": step,
                    "lr": series_lr(step),
                    "seed": SEED,
                },
            )

    train(lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), series_lr, max(SERIES_STEPS), xt, yt, on_step=snapshot)
    log.write(series_dir / "train_log.jsonl")

    for name, values in report.items():
        print(
            f"{name:18s} "
            + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        )
    (DEMO / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")

    problems = verify(report)
    if args.check:
        problems += check_written(dm, x_val, y_val, report)
    for p in problems:
        print("train_demo: FAILED:", p, file=sys.stderr)
    return 1 if problems else 0


def replay_series_log(xt: torch.Tensor, yt: torch.Tensor) -> int:
    """Run the series again (deterministic), check it against the shipped checkpoints, write its log."""
    from safetensors.torch import load_file

    log = SeriesLog()
    mismatched = []

    def record(step, model, loss, grad_norm, ok):
        log.add(step, loss, grad_norm, ok)
        if step in SERIES_STEPS:
            shipped = load_file(str(DEMO / "series" / f"step-{step:06d}.safetensors"))
            if any(not torch.equal(v, shipped[k]) for k, v in model.state_dict().items()):
                mismatched.append(step)

    train(lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), series_lr, max(SERIES_STEPS), xt, yt, on_step=record)
    if mismatched:
        print(f"train_demo: FAILED: the replay differs from the shipped checkpoints at {mismatched}", file=sys.stderr)
        return 1
    log.write(DEMO / "series" / "train_log.jsonl")
    print(f"wrote {len(log.records)} records to {DEMO / 'series' / 'train_log.jsonl'} (replay equals the checkpoints)")
    return 0


def verify(report: dict) -> list[str]:
    """What each checkpoint is meant to show; an empty list when all holds."""
    problems = []
    if report["healthy"]["accuracy"] < 0.8:
        problems.append(f"healthy accuracy {report['healthy']['accuracy']:.3f} < 0.8")
    c = report["collapsed"]
    if not (c["collapse_ratio"] < 1e-2 and c["modal_share"] >= 0.5):
        problems.append(f"collapsed run is not collapsed: {c}")
    ranks = [report[f"series step {s}"]["effective_rank"] for s in SERIES_STEPS]
    if not (min(ranks[3:]) < 0.6 * max(ranks[:2])):
        problems.append(f"series effective rank does not fall: {ranks}")
    return problems


def check_written(dm, x_val, y_val, report) -> list[str]:
    """Reload every written checkpoint into a fresh model (strict) and compare."""
    from safetensors.torch import load_file

    problems = []
    paths = {"healthy": DEMO / "healthy.safetensors", "collapsed": DEMO / "collapsed.safetensors"}
    paths.update({f"series step {s}": DEMO / "series" / f"step-{s:06d}.safetensors" for s in SERIES_STEPS})
    for name, path in paths.items():
        model = dm.build_model()
        model.load_state_dict(load_file(str(path)), strict=True)
        again = describe(model, x_val, y_val)
        if abs(again["accuracy"] - report[name]["accuracy"]) > 1e-9:
            problems.append(f"{path.name} reloads with a different accuracy")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
