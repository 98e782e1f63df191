"""The muon pT an event would have at another dimuon mass, from the seven Stage-1 columns alone.

A category keeps events whose leading-muon pT lies in its window, so how many events of mass m
it keeps depends on how the muon pT change with m. They do not simply scale with m: the Z pT
spectrum is (nearly) the same at every mass in the window, and the leading muon of a boosted Z
owes part of its pT to the boost. So each event is moved to another mass ``m'`` keeping what does
not depend on the mass: the dimuon's transverse momentum and rapidity, and the muons' direction
in the dimuon rest frame. The muon pT are invariant under longitudinal boosts, so it is enough
to work in the frame where the dimuon has no longitudinal momentum: there it has transverse
momentum ``q`` (along x) and energy ``E = sqrt(m^2 + q^2)``, muon 1 flies along ``n`` in the rest
frame, and after the transverse boost

    pT1(m')^2 = ((E' n_x + q) / 2)^2 + (m' n_y / 2)^2,   pT2(m')^2 = ((q - E' n_x) / 2)^2 + (m' n_y / 2)^2,

with ``E' = sqrt(m'^2 + q^2)``. Azimuths are not needed: with massless muons the mass fixes the
opening angle, ``cos(dphi) = cosh(deta) - m^2 / (2 pT1 pT2)``, and with it ``q`` and the
projection of muon 1 on the dimuon direction. Pure numpy.
"""

from __future__ import annotations

import numpy as np

# Below this dimuon pT (GeV) the direction of the boost is undefined and the pT simply scale with m.
_AT_REST_GEV = 1e-6


def four_pt_squared_at_masses(
    pt1: np.ndarray, eta1: np.ndarray, pt2: np.ndarray, eta2: np.ndarray, mass: np.ndarray, masses: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(4 pT1^2, 4 pT2^2)`` of each event at each of ``masses``, of shape ``(len(masses), n_events)`` in float32.

    Squared, for comparisons with cuts. At an event's own mass they are its measured pT (the muon
    mass neglected); inconsistent kinematics (``|cos dphi| > 1`` after rounding) are clipped to the
    nearest physical opening angle.
    """
    p1, p2, m = (np.asarray(a, dtype=np.float64) for a in (pt1, pt2, mass))
    cos_dphi = np.clip(np.cosh(np.asarray(eta1, np.float64) - np.asarray(eta2, np.float64)) - m * m / (2.0 * p1 * p2), -1.0, 1.0)
    q2 = p1 * p1 + p2 * p2 + 2.0 * p1 * p2 * cos_dphi
    q = np.sqrt(np.maximum(q2, 0.0))
    boosted = q > _AT_REST_GEV
    # Muon 1's pT component along the dimuon pT; at rest any split with p_x^2 + p_y^2 = pT1^2 gives the scaling.
    p1_along = np.divide(p1 * (p1 + p2 * cos_dphi), q, out=np.zeros_like(q), where=boosted)
    n_x = ((2.0 * p1_along - q) / np.sqrt(m * m + q2)).astype(np.float32)
    n_y_sq = (4.0 * np.maximum(p1 * p1 - p1_along * p1_along, 0.0) / (m * m)).astype(np.float32)
    target_sq = np.square(np.asarray(masses, dtype=np.float32))[:, None]
    qf = q.astype(np.float32)
    e_nx = target_sq + q2.astype(np.float32)
    np.sqrt(e_nx, out=e_nx)
    e_nx *= n_x  # E' n_x
    transverse = target_sq * n_y_sq  # (m' n_y)^2
    first = e_nx + qf
    np.square(first, out=first)
    first += transverse
    e_nx -= qf  # the second muon's along-component is q - E' n_x: the same square
    np.square(e_nx, out=e_nx)
    e_nx += transverse
    return first, e_nx
