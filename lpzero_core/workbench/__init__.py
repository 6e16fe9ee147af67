"""The workbench layer: what a user runs — search runs on disk, experiments, evaluation tables, figures, the
widget explorer and the ``lpzero`` command.

May import: ``lpzero_core.stats``, ``lpzero_core.search`` and the foundation (``errors``, ``files``).
"""
