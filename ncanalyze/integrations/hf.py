"""A Hugging Face ``transformers`` callback recording a run while ``Trainer`` trains.

::

    from ncanalyze.integrations.hf import NCRecorderCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator,
                      callbacks=[NCRecorderCallback("run.h5", eval_loader, epochs=[0, 1, 3])])
    trainer.train()   # run.h5 holds the statistics of epochs 0 (before training), 1 and 3

By default it records the statistics (:mod:`ncanalyze.recorder`) of the input of the model's
output head (``model.get_output_embeddings()``, e.g. GPT-2's ``lm_head``) with the head's
weight and bias, the batches' ``labels`` shifted to next-token labels (``-100`` skipped).
Without a loader it records over the trainer's training loader. Under data-parallel training
every rank records its shard and rank 0 writes. The slot number in the file is the epoch
(``epochs=``) or the optimizer step (``steps=``); the scalars ``global_step``,
``train_epoch`` and the last logged ``train_loss`` go along.
"""

from __future__ import annotations

from transformers import TrainerCallback

from .recording import Recording

__all__ = ["NCRecorderCallback"]


class NCRecorderCallback(TrainerCallback):
    """Record statistics (or features) of a module at chosen epochs or steps.

    Parameters
    ----------
    path : str or path-like
    loader : iterable, optional
        Evaluation batches (mappings with ``input_ids``, ``labels``, …, as the data collator
        makes them, or ``(inputs, labels)`` pairs). Default: the training loader.
    **options
        Of :class:`~ncanalyze.integrations.recording.Recording`: ``epochs``, ``steps``,
        ``mode`` ("statistics" or "features"), ``classifier``, ``module``, ``output``,
        ``shift_labels``, ``weight_decay``, ``loss``, ``overwrite``, …
    """

    def __init__(self, path, loader=None, **options):
        self.recording = Recording(path, loader, **options)
        self._loss = None

    def _record(self, model, slot, state, loader) -> None:
        self.recording.record(model, slot, loader, global_step=state.global_step,
                              train_epoch=state.epoch or 0.0, train_loss=self._loss)

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kw):
        if self.recording.due_epoch(0):
            self._record(model, 0, state, train_dataloader)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self._loss = logs["loss"]

    def on_step_end(self, args, state, control, model=None, train_dataloader=None, **kw):
        if self.recording.due_step(state.global_step):
            self._record(model, state.global_step, state, train_dataloader)

    def on_epoch_end(self, args, state, control, model=None, train_dataloader=None, **kw):
        epoch = int(round(state.epoch or 0))
        if self.recording.due_epoch(epoch):
            self._record(model, epoch, state, train_dataloader)

    def on_train_end(self, args, state, control, **kw):
        self.recording.close()
