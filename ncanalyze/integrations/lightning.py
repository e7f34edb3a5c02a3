"""A Lightning callback recording a run while ``Trainer.fit`` trains.

::

    from ncanalyze.integrations.lightning import NCRecorder

    trainer = lightning.Trainer(max_epochs=3, callbacks=[NCRecorder("run.h5", eval_loader)])
    trainer.fit(module, train_loader)

It records what :class:`~ncanalyze.integrations.recording.Recording` says (by default the
statistics of the input of the output head found by ``get_output_embeddings()`` inside the
LightningModule; give ``classifier=`` otherwise) after every epoch, or at ``epochs=`` (0:
before training) or optimizer ``steps=``. Without a loader it records over the trainer's
training loader. Under data-parallel training every rank records its shard and rank 0 writes.
"""

from __future__ import annotations

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone package
    from pytorch_lightning import Callback

from .recording import Recording

__all__ = ["NCRecorder"]


class NCRecorder(Callback):
    """Record statistics (or features) of a module at chosen epochs or steps.

    Parameters
    ----------
    path : str or path-like
    loader : iterable, optional
        Evaluation batches; default: the trainer's training loader.
    **options
        Of :class:`~ncanalyze.integrations.recording.Recording` (``epochs``, ``steps``,
        ``mode``, ``classifier``, ``module``, ``shift_labels``, …). ``shift_labels`` is True
        by default (Hugging Face batches); pass False for ``(inputs, labels)`` batches whose
        labels are already per position.
    """

    def __init__(self, path, loader=None, **options):
        self.recording = Recording(path, loader, **options)

    def _record(self, trainer, pl_module, slot) -> None:
        loss = trainer.callback_metrics.get("train_loss", trainer.callback_metrics.get("loss"))
        self.recording.record(pl_module, slot, trainer.train_dataloader,
                              global_step=trainer.global_step,
                              train_epoch=trainer.current_epoch,
                              train_loss=None if loss is None else float(loss))

    def on_train_start(self, trainer, pl_module):
        if self.recording.due_epoch(0):
            self._record(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.recording.due_step(trainer.global_step):
            self._record(trainer, pl_module, trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.recording.due_epoch(trainer.current_epoch + 1):
            self._record(trainer, pl_module, trainer.current_epoch + 1)

    def on_fit_end(self, trainer, pl_module):
        self.recording.close()
