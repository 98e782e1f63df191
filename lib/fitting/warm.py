"""The fit workers' warm start: ROOT loaded and two tiny fits run in their forkserver before any worker is forked.

A fresh process spends its first fit loading ROOT's libraries and compiling RooFit's code paths.
Forked from a server that has done that once (its RooFit objects deleted again), every worker
starts warm and still shares no fit state with the others.

A forkserver's only hook is importing the modules it preloads (``FIT_WORKER_PRELOAD`` names this
one), so importing this module warms up in a forkserver and nowhere else: a test, a doctest
collection or a user importing it pays nothing. Nothing here may stop the server or print: a
worker that finds ROOT cold simply loads it itself.
"""

from __future__ import annotations

import logging
import sys

# What ``multiprocessing.forkserver`` runs with ``python -c`` to start a server.
_FORKSERVER_COMMAND = "from multiprocessing.forkserver import main"


def _warm_up() -> None:
    """Binned BW x DCB fits of synthetic events, plain and with a flat acceptance; tails fixed, no background: they converge quietly."""
    import numpy as np

    from lib.config import load_config, resolve_fit_spec
    from lib.fitting.runner import fit_category
    from lib.fitting.task import AcceptanceTable, FitEvents, FitTask

    config = load_config()
    spec = resolve_fit_spec(config, "warm-up", binned=True)
    params = {
        name: p.model_copy(update={"constant": True}) if name.startswith(("alpha", "n_")) else p
        for name, p in spec.params.items()
    }
    rng = np.random.default_rng(0)
    lo, hi = spec.range_gev
    masses = 91.188 + 1.25 * rng.standard_cauchy(40_000) + rng.normal(0.0, 1.2, 40_000)
    masses = masses[(masses > lo) & (masses < hi)]
    # Both line shapes: the acceptance one with a flat table (the data's comes with each category),
    # since the first fit through its compiled pdf is slower than the next ones.
    flat = AcceptanceTable((1.0,) * 101, (lo - 25.0, lo + 75.0))
    for line_shape in ("breit_wigner", "acceptance"):
        warm = spec.model_copy(update={"params": params, "background": "none", "line_shape": line_shape})
        fit_category(FitTask("warm-up", FitEvents(masses), warm, (), 1.2, config.fit.quality, acceptance=flat))


def in_forkserver() -> bool:
    """Whether this process is a ``multiprocessing`` forkserver (started as ``python -c`` with its command)."""
    return any(arg.startswith(_FORKSERVER_COMMAND) for arg in sys.orig_argv)


def _warm_up_quietly() -> None:
    """``_warm_up`` with logging off and every error swallowed (see the module docstring)."""
    logging.disable(logging.CRITICAL)
    try:
        _warm_up()
    except Exception:  # noqa: BLE001 - see the module docstring
        pass
    finally:
        logging.disable(logging.NOTSET)


if in_forkserver():
    _warm_up_quietly()
