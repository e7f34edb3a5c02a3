#!/usr/bin/env python
"""Train an MLP on scikit-learn's digits past zero training error and record Neural Collapse.

Regenerate the bundled run (examples/digits_mlp.h5, about a minute on one CPU core) with:

    python examples/train_digits.py --loss mse --activation leaky_relu --epochs 600 \
        --lr 0.1 --weight-decay 1e-4 --widths 256,128,64,32,32,32 --records 18 --seed 0 \
        --out examples/digits_mlp.h5 --overwrite

(these are also the defaults). A cross-entropy variant for comparison (e.g.
``ncanalyze plot A.h5 --compare B.h5``):

    python examples/train_digits.py --loss ce --out digits_ce.h5

Real data (the 1 797 8×8 digit images shipped with scikit-learn, no download), a real network
(MLP 64-256-128-64-32-32-32-10 with LeakyReLU(0.1) by default), CPU only and deterministic for a
given --seed. At epoch 0, the last epoch and about --records log-spaced epochs in between (or
every --save-every epochs) the script records, with :class:`ncanalyze.RunWriter`, the
penultimate features of the training set (the input of the last linear layer), the classifier
W and b, the outputs of two earlier blocks (``/layers``), the test split's features
(``/splits/test``) and the scalars train_loss, train_acc, test_acc, lr; then it runs
``ncanalyze report`` on the file.

The activation is not ReLU by default: post-ReLU features have dead units (always 0), so Σ_W
is singular and ``ncanalyze snr`` computes the SNR on the support of Σ_W, dropping those
directions (``snr_dropped_dims``; ``--activation relu`` gives 6–21 per epoch). A leaky
activation keeps every unit alive while the network still trains past zero training error.

Needs PyTorch and scikit-learn (``python -m pip install -e '.[examples]'``). Deterministic for
one PyTorch build and CPU; another build rounds differently and training amplifies it: with
torch 2.13.0 (CPU) the defaults reproduce the bundled run to float16 rounding through epoch
20, then drift (nc1 at epoch 600: 5.937e-4 instead of 5.981e-4), see docs/TUTORIAL.md §1.

The MSE loss is the paper convention ½·(1/N) Σ ‖W h_i + b − e_{y_i}‖² (Han et al.), so with
PyTorch's ``weight_decay=wd`` the λ of ``ncanalyze decompose`` is wd; it is stored in the file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn

try:
    from ncanalyze import RunWriter
except ImportError:  # older versions export it from ncanalyze.io only
    from ncanalyze.io import RunWriter
from ncanalyze.capture import record_epoch


ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.1), "gelu": nn.GELU, "elu": nn.ELU,
               "tanh": nn.Tanh, "relu": nn.ReLU}


class MLP(nn.Module):
    """in_dim → widths[0] → … → widths[-1] → C, an activation after every hidden layer.

    The hidden blocks are ``block1``, ``block2``, …; the last one's output is the penultimate
    feature vector and ``fc`` is the classifier.
    """

    def __init__(self, in_dim: int = 64, widths=(256, 128, 64, 32, 32, 32), num_classes: int = 10,
                 activation: str = "leaky_relu"):
        super().__init__()
        dims = (in_dim,) + tuple(widths)
        self.blocks = []
        for i in range(len(widths)):
            block = nn.Sequential(nn.Linear(dims[i], dims[i + 1]), ACTIVATIONS[activation]())
            self.add_module(f"block{i + 1}", block)
            self.blocks.append(block)
        self.fc = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.fc(x)


def load_data(seed: int):
    """Digits scaled to [0, 1], split 75/25 stratified; returns float32/int64 tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y,
                                              random_state=seed)
    # Sort the training set by class: the run file is easier to read, and order is irrelevant.
    order = np.argsort(y_tr, kind="stable")
    x_tr, y_tr = x_tr[order], y_tr[order]
    as_t = torch.from_numpy
    return as_t(x_tr), as_t(y_tr.astype(np.int64)), as_t(x_te), as_t(y_te.astype(np.int64))


def make_loss(kind: str, num_classes: int):
    if kind == "ce":
        return nn.CrossEntropyLoss()
    eye = torch.eye(num_classes)

    def half_mse(out, y):
        return 0.5 * ((out - eye[y]) ** 2).sum(dim=1).mean()

    return half_mse


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train()
    return acc


def batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, x.shape[0], size)]


def run_report(path: str) -> int:
    """``ncanalyze report`` on the run (falls back to ``metrics`` where report is missing)."""
    base = [sys.executable, "-m", "ncanalyze"]
    for command in ("report", "metrics"):
        probe = subprocess.run(base + [command, "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            print(f"\n$ ncanalyze {command} {path} --layers --split test", flush=True)
            return subprocess.run(base + [command, path, "--layers", "--split", "test"]).returncode
    print("ncanalyze has neither a report nor a metrics command", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loss", choices=("mse", "ce"), default="mse")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), default="leaky_relu",
                   help="hidden activation (default leaky_relu, slope 0.1; relu leaves dead "
                        "penultimate units: Σ_W is singular and the SNR is computed on its "
                        "support, snr_dropped_dims counting them)")
    p.add_argument("--epochs", type=int, default=600, help="training epochs (default 600)")
    p.add_argument("--save-every", type=int, default=None,
                   help="record every K epochs (default: --records epochs, log-spaced)")
    p.add_argument("--records", type=int, default=18,
                   help="without --save-every: record epoch 0 and about this many log-spaced "
                        "epochs up to the last (default 18)")
    p.add_argument("--out", default="digits_run.h5", help="run file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None,
                   help="initial SGD learning rate (default 0.1 for mse, 0.02 for ce)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--widths", default="256,128,64,32,32,32",
                   help="hidden widths, comma separated; the last is the feature dimension P")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="storage dtype of features (float16 keeps the file small)")
    p.add_argument("--no-report", action="store_true", help="do not run ncanalyze report")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = load_data(args.seed)
    num_classes = 10
    widths = tuple(int(w) for w in args.widths.split(","))
    model = MLP(x_tr.shape[1], widths, num_classes=num_classes, activation=args.activation)
    # Depth-wise collapse: the two hidden blocks before the penultimate one go to /layers.
    recorded_layers = {f"block{i + 1}": model.blocks[i]
                       for i in range(max(0, len(widths) - 3), len(widths) - 1)}
    lr = args.lr if args.lr is not None else (0.1 if args.loss == "mse" else 0.02)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9,
                          weight_decay=args.weight_decay)
    # Papyan et al.'s schedule: divide the learning rate by 10 at 1/3 and 2/3 of training.
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[args.epochs // 3, 2 * args.epochs // 3], gamma=0.1)
    loss_fn = make_loss(args.loss, num_classes)
    if args.save_every:
        recorded = set(range(0, args.epochs + 1, args.save_every)) | {args.epochs}
    else:  # collapse is fast early and slow late: log-spaced records show both
        recorded = {0, args.epochs} | {
            int(e) for e in np.round(np.geomspace(1, max(1, args.epochs), args.records))}
    gen = torch.Generator().manual_seed(args.seed)
    train_eval = batches(x_tr, y_tr, 512)  # fixed order, for recording
    test_eval = batches(x_te, y_te, 512)
    dtype = np.float16 if args.dtype == "float16" else np.float32

    if os.path.exists(args.out) and args.overwrite:
        os.unlink(args.out)
    with RunWriter(args.out, y_tr, num_classes=num_classes, weight_decay=args.weight_decay,
                   loss=args.loss, splits={"test": y_te}, compression="gzip") as writer:
        train_loss = float("nan")
        for epoch in range(args.epochs + 1):
            if epoch > 0:  # epoch 0 is the initialisation
                perm = torch.randperm(x_tr.shape[0], generator=gen)
                total = 0.0
                for idx in perm.split(args.batch_size):
                    opt.zero_grad()
                    loss = loss_fn(model(x_tr[idx]), y_tr[idx])
                    loss.backward()
                    opt.step()
                    total += loss.item() * idx.numel()
                train_loss = total / x_tr.shape[0]
                sched.step()
            if epoch in recorded:
                train_acc, test_acc = accuracy(model, x_tr, y_tr), accuracy(model, x_te, y_te)
                record_epoch(writer, epoch, model, train_eval, classifier=model.fc,
                             layers=recorded_layers,
                             splits={"test": test_eval}, dtype=dtype,
                             train_loss=train_loss, train_acc=train_acc, test_acc=test_acc,
                             lr=opt.param_groups[0]["lr"])
                print(f"epoch {epoch:4d}  loss {train_loss:.3e}  train acc {train_acc:.4f}  "
                      f"test acc {test_acc:.4f}", flush=True)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MiB)")
    return 0 if args.no_report else run_report(args.out)


if __name__ == "__main__":
    sys.exit(main())
