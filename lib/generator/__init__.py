"""Synthetic Stage-1 "compacted" samples whose true resolution scale k per category is known.

The calibration can only be validated against truth, and the real Stage-1 files have none, so the
generator writes files with the real layout and columns, plus a ``truth.json`` with the k of each
category. One module per job:

* ``settings``: the schema of ``configs/generator.yaml``;
* ``kmaps``: the true k per category of the analysis scheme, built-in maps and overrides;
* ``kinematics``: the true dimuon (mass, decay, boost, FSR); ``simulation``: the detector (k enters
  there), cuts and written columns, in memory;
* ``plan``: what a sample is asked to be (``SampleRequest``, ``WriteOptions``), its datasets and
  files; ``writing``: the parquet files, in parallel and staged; ``truth``: the truth file's content.

The names below are the generator's public surface, re-exported so callers need not know which
module holds them.
"""

from lib.generator.kmaps import builtin_k_map, default_scheme, load_k_override, resolve_k_map
from lib.generator.plan import DEFAULT_SEED, SampleRequest, WriteOptions
from lib.generator.settings import DEFAULT_SETTINGS, KINDS, GeneratorSettings, load_settings
from lib.generator.simulation import EventModel, FileChunk, generate_events
from lib.generator.truth import GENERATOR_VERSION
from lib.generator.writing import generate_sample

__all__ = [
    "GENERATOR_VERSION",
    "DEFAULT_SETTINGS",
    "KINDS",
    "GeneratorSettings",
    "load_settings",
    "default_scheme",
    "builtin_k_map",
    "resolve_k_map",
    "load_k_override",
    "DEFAULT_SEED",
    "EventModel",
    "FileChunk",
    "generate_events",
    "SampleRequest",
    "WriteOptions",
    "generate_sample",
]
