"""Training-framework callbacks that record a run while a model trains.

Optional: ``import ncanalyze`` never imports this package. Import the module of your
framework yourself — :mod:`ncanalyze.integrations.hf` (Hugging Face ``transformers``,
``pip install ncanalyze[hf]``) or :mod:`ncanalyze.integrations.lightning` (Lightning,
``pip install ncanalyze[lightning]``). Both record, at chosen epochs or steps, the statistics
(:mod:`ncanalyze.recorder`) or, for small runs, the features (:mod:`ncanalyze.capture`) of a
chosen module — by default the input of a causal language model's output head, with the
head's weight and bias.
"""
