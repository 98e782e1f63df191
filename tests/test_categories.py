"""Category assignment against a hand-worked table, boundaries included ([lo, hi) everywhere)."""

from __future__ import annotations

import numpy as np
import pytest

from lib.categories import NO_CATEGORY
from lib.errors import ConfigError

# (leading pT, |eta1|, |eta2|) -> expected name or None (outside every category)
HAND_WORKED = [
    ((30.0, 0.0, 0.0), "30-45_BB"),
    ((44.999, 0.5, 1.0), "30-45_BO"),
    ((45.0, 0.5, 1.0), "45-52_BO"),
    ((52.0, 0.9, 0.0), "52-62_OB"),
    ((61.9, 0.8999, 1.7999), "52-62_BO"),
    ((62.0, 1.8, 1.8), "62-200_EE"),
    ((199.9, 2.3999, 0.0), "62-200_EB"),
    ((35.0, -1.0, 2.0), "30-45_OE"),  # negative eta: |eta| is used
    ((29.999, 0.1, 0.1), None),
    ((200.0, 0.1, 0.1), None),
    ((100.0, 2.4, 0.1), None),
    ((100.0, 0.1, float("nan")), None),
]


def test_names_follow_original_order(scheme):
    names = scheme.names
    assert len(names) == 36
    assert names[:9] == ["30-45_BB", "30-45_BO", "30-45_BE", "30-45_OB", "30-45_OO", "30-45_OE", "30-45_EB", "30-45_EO", "30-45_EE"]
    assert names[9] == "45-52_BB" and names[-1] == "62-200_EE"


@pytest.mark.parametrize(("muon", "expected"), HAND_WORKED)
def test_hand_worked_assignment(scheme, muon, expected):
    index = scheme.assign(*(np.array([v]) for v in muon))[0]
    if expected is None:
        assert index == NO_CATEGORY
    else:
        assert scheme.names[index] == expected


def test_index_layout_matches_correction_row_major(scheme):
    for index in range(scheme.n_categories):
        i_pt, i1, i2 = scheme.bin_indices(index)
        assert index == 9 * i_pt + 3 * i1 + i2
        centre = scheme.center(index)
        assert scheme.assign(*(np.array([c]) for c in centre))[0] == index


def test_unknown_category_lists_valid_names(scheme):
    with pytest.raises(ConfigError, match="unknown category '30-45_XX'; valid: 30-45_BB"):
        scheme.index_of("30-45_XX")
