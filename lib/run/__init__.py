"""The orchestration layer: how a run reads, fits and writes, one module per step.

``reduction`` (executors and reading), ``closure`` and ``higgs`` (validation steps) sit above
the physics modules of ``lib`` (categories, resolution, histograms, medians, acceptance, factors,
closure bins, fitting), which never import this package; ``lib.pipeline`` calls them.
"""
