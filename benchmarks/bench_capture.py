"""Benchmark of the statistics recorder (issue 19): forward pass alone vs recording.

A GPT-2-shaped language model (P = 768, ``--layers`` blocks, random weights from a config: no
download) runs over the same batches of Zipf-distributed tokens:

* **forward**: ``model(ids)`` under ``torch.no_grad()`` (logits over the whole vocabulary),
  tokens/s;
* **statistics pass** and **decision pass** of :func:`ncanalyze.recorder.record_statistics`
  (each a forward pass up to the head's input, plus the accumulation), tokens/s each, and
  their overhead over one forward pass: ``t_pass / t_forward − 1``;
* **recording**: both passes together against two forward passes (the recorder needs two);
* **memory** (a separate run): on CPU, the peak of the NumPy allocations during
  ``record_statistics`` (``tracemalloc``: the recorder's arrays — the model's tensors are
  torch's and not counted); on CUDA, ``torch.cuda.max_memory_allocated`` during recording
  minus what was allocated before. Bound printed beside it: ``(C·P + P² + C)·8·2`` bytes plus
  one batch (its ``batch × length`` positions, float32 rows + their float64 centred copy:
  the recorder makes each batch its own accumulation block).

For C = 50,257 (GPT-2's vocabulary) and C = 4,096. Run under the benchmark lock and quote
the load average::

    flock /tmp/fullsuite.lock python benchmarks/bench_capture.py
    python benchmarks/bench_capture.py --device cuda --tokens 262144   # on a GPU
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import tracemalloc

import numpy as np
import torch


def zipf_tokens(c: int, shape, rng, s: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, c + 1) ** s
    return rng.permutation(c)[rng.choice(c, size=shape, p=p / p.sum())]


def build(c: int, layers: int, length: int, device: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=c, n_positions=length, n_embd=768, n_layer=layers, n_head=12,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).to(device).eval()


def batches(c: int, tokens: int, batch: int, length: int, device: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = max(1, tokens // (batch * length))
    ids = torch.as_tensor(zipf_tokens(c, (n, batch, length + 1), rng))
    out = []
    for k in range(n):
        x = ids[k, :, :-1].to(device)
        y = ids[k, :, 1:].clone()
        out.append((x, y))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_forward(model, data, device) -> float:
    with torch.no_grad():
        sync(device)
        t = time.perf_counter()
        for x, _ in data:
            model(x)
        sync(device)
    return time.perf_counter() - t


def case(c: int, args) -> dict:
    from ncanalyze.recorder import record_statistics

    model = build(c, args.layers, args.length, args.device)
    data = batches(c, args.tokens, args.batch, args.length, args.device)
    tokens = sum(int(y.numel()) for _, y in data)
    with torch.no_grad():
        model(data[0][0])  # warm-up
    fwd, stats, dec = [], [], []
    for _ in range(args.reps):  # interleaved, minimum of each
        fwd.append(time_forward(model, data, args.device))
        rec = record_statistics(model, data, model.lm_head)
        stats.append(rec.seconds["statistics"])
        dec.append(rec.seconds["decisions"])
    t_f, t_s, t_d = min(fwd), min(stats), min(dec)
    p = 768
    del rec
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        record_statistics(model, data, model.lm_head)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        tracemalloc.start()
        record_statistics(model, data, model.lm_head)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    block = args.batch * args.length * p * (4 + 8)
    bound = (c * p + p * p + c) * 8 * 2
    return {"C": c, "P": p, "layers": args.layers, "tokens": tokens,
            "forward_tok_s": tokens / t_f, "statistics_tok_s": tokens / t_s,
            "decisions_tok_s": tokens / t_d,
            "statistics_overhead": t_s / t_f - 1, "decisions_overhead": t_d / t_f - 1,
            "recording_vs_two_forwards": (t_s + t_d) / (2 * t_f) - 1,
            "memory_MiB": peak / 2**20, "bound_MiB": bound / 2**20,
            "batch_MiB": block / 2**20, "within_bound": peak <= bound + block}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", default="50257,4096")
    ap.add_argument("--layers", type=int, default=12, help="GPT-2 small has 12")
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device "
          f"{args.device}, load average {os.getloadavg()[0]:.2f}")
    rows = [case(int(c), args) for c in args.vocab.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'C':>7} {'fwd tok/s':>10} {'stats tok/s':>12} {'dec tok/s':>10} "
          f"{'stats ovh':>9} {'dec ovh':>8} {'both/2fwd':>9} {'mem MiB':>8} {'bound MiB':>10}")
    for r in rows:
        print(f"{r['C']:>7} {r['forward_tok_s']:>10.0f} {r['statistics_tok_s']:>12.0f} "
              f"{r['decisions_tok_s']:>10.0f} {r['statistics_overhead']:>+9.1%} "
              f"{r['decisions_overhead']:>+8.1%} {r['recording_vs_two_forwards']:>+9.1%} "
              f"{r['memory_MiB']:>8.0f} {r['bound_MiB']:>6.0f}+{r['batch_MiB']:.0f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
