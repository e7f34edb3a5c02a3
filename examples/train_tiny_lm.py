"""Train a tiny GPT-2 on Python's own documentation and record a statistics run of it.

Everything is local: the text is the standard library's ``pydoc_data.topics`` (the help
pages of ``help("topics")``, ~0.5 MB of English), a byte-pair-encoding tokenizer with a
vocabulary of 4,096 tokens is trained on it in memory (``tokenizers``), and the model is a
2-layer GPT-2 built from a config (``transformers``; no download). Training takes a few
minutes on a laptop CPU.

At the epochs of ``--record`` (0 = before training) the Hugging Face callback of
``ncanalyze.integrations.hf`` runs the model over the training and held-out text and records,
for the input of the output head (the last hidden state at every position, P = ``--width``)
with next-token labels over C = 4,096 classes, the per-class statistics and decision counts —
not the features: the file's size does not depend on the number of tokens. Then::

    ncanalyze report examples/tiny_lm.h5

Usage::

    pip install "ncanalyze[hf]"
    python examples/train_tiny_lm.py                      # writes tiny_lm.h5
    python examples/train_tiny_lm.py --out examples/tiny_lm.h5   # the bundled file
"""

from __future__ import annotations

import argparse
import time
from pydoc_data.topics import topics

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from ncanalyze.integrations.hf import NCRecorderCallback


def tokenize(vocab_size: int) -> np.ndarray:
    """The pydoc topics as BPE token ids (a tokenizer trained here, in memory)."""
    text = "\n".join(topics[k] for k in sorted(topics))
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.splitlines(), trainer=trainer)
    return np.asarray(tok.encode(text).ids, dtype=np.int64)


def blocks(ids: np.ndarray, length: int) -> list[dict]:
    """Examples of ``length`` tokens; labels are the tokens (the model shifts them)."""
    n = ids.size // length
    x = torch.as_tensor(ids[:n * length]).reshape(n, length)
    return [{"input_ids": b, "labels": b.clone()} for b in x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tiny_lm.h5")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--record", default="0,2,4", help="epochs to record (0: before)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    ids = tokenize(args.vocab)
    examples = blocks(ids, args.context)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(examples))
    cut = len(examples) // 10
    held_out = [examples[i] for i in order[:cut]]
    train = [examples[i] for i in order[cut:]]
    print(f"{ids.size} tokens, vocabulary {args.vocab}, {len(train)} training blocks of "
          f"{args.context}, {len(held_out)} held out")

    config = GPT2Config(vocab_size=args.vocab, n_positions=args.context, n_embd=args.width,
                        n_layer=args.layers, n_head=4, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    batch = 16
    record = [int(e) for e in args.record.split(",")]
    callback = NCRecorderCallback(
        args.out, DataLoader(train, batch_size=128), epochs=record,
        splits={"test": DataLoader(held_out, batch_size=128)}, weight_decay=args.weight_decay,
        loss="ce", overwrite=True, steps_per_epoch=-(-len(train) // batch))
    targs = TrainingArguments(output_dir="/tmp/ncanalyze_tiny_lm", num_train_epochs=args.epochs,
                              per_device_train_batch_size=batch, learning_rate=5e-3,
                              weight_decay=args.weight_decay, warmup_steps=20,
                              lr_scheduler_type="cosine", logging_steps=50, report_to=[],
                              use_cpu=True, save_strategy="no", disable_tqdm=True,
                              seed=args.seed)
    start = time.perf_counter()
    Trainer(model=model, args=targs, train_dataset=train, callbacks=[callback]).train()
    print(f"trained and recorded epochs {record} in {time.perf_counter() - start:.0f} s: "
          f"{args.out}")
    print(f"next: ncanalyze report {args.out}")


if __name__ == "__main__":
    main()
