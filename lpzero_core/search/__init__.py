"""The search layer: what a proxy is and how one is found, given a statistics cache.

Owns the op table and the proxy inputs (``ops``), proxy genotypes (``proxy``), the Rule-based Pruning Strategy
(``pruning``), the genetic algorithms (``gp``, on the loop of ``steady_state`` that the LLaMA search shares) and the
rank metrics (``metrics``); beyond the LPZero template: typed expression trees (``tree``) evolved with DEAP
(``evolve``: the tree and combine modes), the scikit-learn surrogate (``surrogate``) and the generalisation controls
they share (``resample``: inner validation fold, resampled fitness).
It never builds a model and never writes a file: a cache is anything with ``search_ids``, ``target`` and
``branch(input, ops)`` (the new modes also read ``strata``, ``descriptors``, ``baselines``,
``baseline_seconds`` and ``extract_seconds``), and a search reports its progress to an observer that the workbench
provides.

May import: ``lpzero_core.errors``, ``lpzero_core.files`` — nothing else of the project.
"""
