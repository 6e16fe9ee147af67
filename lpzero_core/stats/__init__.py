"""The statistics layer: from a benchmark to the statistics cache that the search reads.

Owns the benchmarks (model builders, ground truth, text batches, proxy sites; the synthetic benchmark behind
the same door), offline text, benchmark data files, extraction (models run once per architecture), the cache
format and the hand-crafted baseline proxies.

May import: ``lpzero_core.search`` and the foundation (``errors``, ``files``).
"""
