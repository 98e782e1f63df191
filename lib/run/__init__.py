"""The orchestration layer: how a run reads, fits and writes, one module per step.

``reduction`` (executors, reading and its cache), ``step1``, ``step2``, ``step3``, ``closure`` and
``higgs`` (the validation steps), ``outputs`` (the output directory and its provenance) and
``summary`` sit above the physics modules of ``lib`` (categories, resolution, histograms,
medians, acceptance, factors, closure bins, fitting), which never import this package;
``lib.pipeline`` routes a run through them and nothing here imports it.
"""
