"""Random Stage-1-like tables for reader and bad-input tests (uniform kinematics, every category filled)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def random_stage1_table(
    n: int, seed: int, mass_range: tuple[float, float] = (70.0, 110.0), unrelated: bool = False, weights: bool = False
) -> pa.Table:
    """``n`` float32 events: the seven kinematic columns, optionally an unrelated column and ``wgt_nominal``.

    Columns are drawn in a fixed order, so a seed gives the same kinematics whatever the options.
    """
    rng = np.random.default_rng(seed)
    cols = {
        "mu1_pt": rng.uniform(31, 150, n),
        "mu1_ptErr": rng.uniform(0.3, 3.0, n),
        "mu1_eta": rng.uniform(-2.39, 2.39, n),
        "mu2_pt": rng.uniform(21, 60, n),
        "mu2_ptErr": rng.uniform(0.2, 1.5, n),
        "mu2_eta": rng.uniform(-2.39, 2.39, n),
        "dimuon_mass": rng.uniform(*mass_range, n),
    }
    if unrelated:
        cols["unrelated"] = rng.normal(size=n)
    if weights:
        cols["wgt_nominal"] = rng.uniform(0.5, 1.5, n)
    return pa.table({k: pa.array(v.astype(np.float32)) for k, v in cols.items()})
