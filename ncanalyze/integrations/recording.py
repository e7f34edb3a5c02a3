"""What the framework callbacks share: when to record, what, and the run file."""

from __future__ import annotations

from typing import Any, Iterable

from ..capture import penultimate_features
from ..errors import UsageError
from ..io.writer import RunWriter
from ..recorder import record_statistics_epoch

MODES = ("statistics", "features")


def output_head(model):
    """``(owner, head)``: the first of ``model`` and its submodules with an output head
    (``get_output_embeddings()``, a Hugging Face model) and that head. The owner is what the
    batches are fed to (a LightningModule wrapping a transformers model need not accept
    them)."""
    for _, mod in model.named_modules():
        get = getattr(mod, "get_output_embeddings", None)
        if callable(get) and get() is not None:
            return mod, get()
    raise UsageError("the model has no get_output_embeddings(): give classifier= (the output "
                     "layer, a module or its dotted name)")


def is_writing_rank() -> bool:
    """True on the rank that writes: rank 0 of torch.distributed, or the only process."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Recording:
    """Record a run file at chosen epochs or steps (see the callbacks for the parameters).

    Parameters
    ----------
    path : str or path-like
        The run file (created at the first recording).
    loader : iterable, optional
        Evaluation batches: ``(inputs, labels)`` pairs or mappings with ``"labels"``
        (``model(**batch)``). Default: the framework's training loader.
    epochs, steps : iterable of int, optional
        When to record: after these epochs (0: before training) or optimizer steps. Default:
        after every epoch.
    mode : {"statistics", "features"}
        A statistics run (memory and file size independent of the number of tokens) or a
        features run (every row; small runs only).
    classifier : module or str, optional
        Default: the output head (``get_output_embeddings()``) of the model or of its first
        submodule that has one; the batches are then fed to that (sub)model.
    module : module or str, optional
        Where the features are (its input; its output with ``output=True``); default: the
        classifier's input.
    shift_labels : bool, default True
        The batches' labels are the tokens (Hugging Face causal-LM convention); the label of
        position t is the token at t + 1.
    num_classes, weight_decay, loss, overwrite, compression, steps_per_epoch :
        Passed to :class:`~ncanalyze.io.writer.RunWriter`.
    **options :
        Passed to :func:`~ncanalyze.recorder.record_statistics` (``splits`` — a mapping of
        split names to loaders, ``layers``, ``dtype``, …).
    """

    def __init__(self, path, loader: Iterable | None = None, *, epochs=None, steps=None,
                 mode: str = "statistics", classifier=None, module=None, output: bool = False,
                 shift_labels: bool = True, num_classes: int | None = None,
                 weight_decay: float | None = None, loss: str | None = None,
                 overwrite: bool = False, compression: str | None = None,
                 steps_per_epoch: int | None = None, **options: Any):
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "features" and (module is not None or options):
            raise UsageError("mode='features' records the classifier's input only")
        self.path, self.loader, self.mode = path, loader, mode
        self.epochs = None if epochs is None else {int(e) for e in epochs}
        self.steps = None if steps is None else {int(s) for s in steps}
        if self.epochs is None and self.steps is None:
            self.epochs = "every"
        self.classifier, self.module, self.output = classifier, module, output
        self.shift_labels, self.num_classes = shift_labels, num_classes
        self.writer_options = {"weight_decay": weight_decay, "loss": loss,
                               "overwrite": overwrite, "compression": compression,
                               "steps_per_epoch": steps_per_epoch}
        self.options = options
        self.writer: RunWriter | None = None
        self.recorded: list[int] = []

    def due_epoch(self, epoch: int) -> bool:
        if self.epochs == "every":
            return epoch > 0
        return self.epochs is not None and epoch in self.epochs

    def due_step(self, step: int) -> bool:
        return self.steps is not None and step in self.steps

    def record(self, model, slot: int, loader: Iterable | None = None, **scalars: float) -> None:
        """Record slot ``slot`` (the epoch or step number) of ``model`` over the loader."""
        loader = self.loader if self.loader is not None else loader
        if loader is None:
            raise UsageError("no loader to record from: pass loader=")
        if self.recorded and slot <= self.recorded[-1]:
            return  # already recorded (an epoch end that is also a chosen step)
        if self.classifier is None:
            model, classifier = output_head(model)
        else:
            classifier = self.classifier
        # Every slot carries the same scalars (NaN where a value is not known yet, e.g. the
        # training loss before the first step).
        scalars = {k: float("nan") if v is None else float(v) for k, v in scalars.items()}
        if self.mode == "statistics":
            self._statistics(model, slot, loader, classifier, scalars)
        else:
            self._features(model, slot, loader, classifier, scalars)
        self.recorded.append(slot)

    def _statistics(self, model, slot, loader, classifier, scalars) -> None:
        writing = is_writing_rank()
        if writing and self.writer is None:
            self.writer = RunWriter(self.path, num_classes=self._classes(model, classifier),
                                    statistics=True,
                                    splits=list(self.options.get("splits") or {}) or None,
                                    **self.writer_options)
        record_statistics_epoch(self.writer if writing else None, slot, model, loader,
                                classifier, module=self.module, output=self.output,
                                num_classes=self.num_classes, shift_labels=self.shift_labels,
                                scalars=scalars, **self.options)

    def _features(self, model, slot, loader, classifier, scalars) -> None:
        from ..capture import record_epoch

        pairs = _pairs(loader, self.shift_labels)
        if self.writer is None:
            _, labels = penultimate_features(model, pairs, classifier)
            if is_writing_rank():
                self.writer = RunWriter(self.path, labels,
                                        num_classes=self._classes(model, classifier),
                                        **self.writer_options)
        if self.writer is not None:
            record_epoch(self.writer, slot, model, pairs, classifier, **scalars)

    def _classes(self, model, classifier) -> int | None:
        """C: ``num_classes``, else the classifier's rows."""
        if self.num_classes is not None:
            return self.num_classes
        if isinstance(classifier, str):
            classifier = dict(model.named_modules()).get(classifier)
        weight = getattr(classifier, "weight", None)
        return None if weight is None else int(weight.shape[0])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _pairs:
    """``(input_ids, next-token labels)`` pairs from mapping batches (features mode)."""

    def __init__(self, loader, shift: bool):
        self.loader, self.shift = loader, shift

    def __iter__(self):
        import torch

        for batch in self.loader:
            if not isinstance(batch, dict):
                yield batch
                continue
            ids = batch["input_ids"]
            labels = torch.as_tensor(batch["labels"])
            if self.shift:
                pad = torch.full_like(labels[..., :1], -100)
                labels = torch.cat([labels[..., 1:], pad], dim=-1)
            yield ids, labels
