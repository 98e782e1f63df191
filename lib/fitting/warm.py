"""Imported by the fit workers' forkserver: load ROOT and run one tiny fit before any worker is forked.

A fresh process spends ~2 s of its first fit loading ROOT's libraries and compiling RooFit's
code paths. Forked from a server that has done that once (its RooFit objects deleted again), every
worker starts warm and still shares no fit state with the others. Nothing here may stop the
server or print: a worker that finds ROOT cold simply loads it itself.
"""

from __future__ import annotations

import logging


def _warm_up() -> None:
    """One binned BW x DCB fit of synthetic events, tails fixed and no background so it converges quietly."""
    import numpy as np

    from lib.config import load_config, resolve_fit_spec
    from lib.fitting.runner import FitTask, fit_category

    config = load_config()
    spec = resolve_fit_spec(config, "warm-up", binned=True)
    params = {
        name: p.model_copy(update={"constant": True}) if name.startswith(("alpha", "n_")) else p
        for name, p in spec.params.items()
    }
    # The plain line shape: the acceptance one needs a table from the data, and without it the fit
    # would stop before RooFit ran (silently, as everything here must).
    spec = spec.model_copy(update={"params": params, "background": "none", "line_shape": "breit_wigner"})
    rng = np.random.default_rng(0)
    lo, hi = spec.range_gev
    masses = 91.188 + 1.25 * rng.standard_cauchy(40_000) + rng.normal(0.0, 1.2, 40_000)
    fit_category(FitTask("warm-up", masses[(masses > lo) & (masses < hi)], None, spec, (), 1.2, config.fit.quality))
    # The acceptance line shape's compiled pdf, so no worker compiles it in its first fit.
    from lib.fitting.model import accepted_conv_class

    accepted_conv_class()


logging.disable(logging.CRITICAL)
try:
    _warm_up()
except Exception:  # noqa: BLE001 - see the module docstring
    pass
finally:
    logging.disable(logging.NOTSET)
