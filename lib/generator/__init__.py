"""Synthetic Stage-1 "compacted" samples whose true resolution scale k per category is known.

The calibration can only be validated against truth, and the real Stage-1 files have none, so the
generator writes files with the real layout and columns, plus a ``truth.json`` with the k of each
category. Modules: ``settings`` (schema of ``configs/generator.yaml``), ``kmaps`` (the true k),
``kinematics`` (the true dimuon), ``simulation`` (the detector, where k enters), ``plan`` (what a
sample consists of), ``writing`` (the parquet files) and ``truth`` (the truth file's content).
The names in ``__all__`` are the public surface.
"""

from lib.generator.kmaps import builtin_k_map, load_k_override, resolve_k_map
from lib.generator.plan import DEFAULT_SEED, SampleRequest, WriteOptions
from lib.generator.settings import DEFAULT_SETTINGS, GeneratorSettings, load_settings
from lib.generator.simulation import EventModel, generate_events
from lib.generator.truth import GENERATOR_VERSION
from lib.generator.writing import generate_sample

__all__ = [
    "DEFAULT_SEED", "DEFAULT_SETTINGS", "GENERATOR_VERSION", "EventModel", "GeneratorSettings", "SampleRequest", "WriteOptions",
    "builtin_k_map", "generate_events", "generate_sample", "load_k_override", "load_settings", "resolve_k_map",
]  # fmt: skip
