"""The search layer: what a proxy is and how one is found, given a statistics cache.

Owns the op table and the proxy inputs (``ops``), proxy genotypes (``proxy``), the Rule-based Pruning Strategy
(``pruning``), the genetic algorithms (``gp``) and the rank metrics (``metrics``). It never builds a model and
never writes a file: a cache is anything with ``search_ids``, ``target`` and ``branch(input, ops)``, and a
search reports its progress to an observer that the workbench provides.

May import: ``lpzero_core.errors``, ``lpzero_core.files`` — nothing else of the project.
"""
