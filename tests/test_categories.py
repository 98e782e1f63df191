"""Category assignment against a hand-worked table and a brute-force reference ([lo, hi) everywhere)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.categories import NO_CATEGORY, CategoryScheme
from lib.config import load_config
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


def _reference_bin(value: float, edges: tuple[float, ...]) -> int | None:
    """The [lo, hi) bin holding ``value`` by looping over the edges; None outside them (NaN included)."""
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        if lo <= value < hi:
            return i
    return None


def _reference_name(scheme: CategoryScheme, pt: float, eta1: float, eta2: float) -> str | None:
    """Category name built from the edges and region letters, independent of the flat index layout."""
    i_pt = _reference_bin(pt, scheme.pt_edges)
    i1, i2 = _reference_bin(abs(eta1), scheme.abseta_edges), _reference_bin(abs(eta2), scheme.abseta_edges)
    if i_pt is None or i1 is None or i2 is None:
        return None
    pt_bin = f"{scheme.pt_edges[i_pt]:g}-{scheme.pt_edges[i_pt + 1]:g}"
    return f"{pt_bin}_{scheme.region_names[i1]}{scheme.region_names[i2]}"


def _near_edges(edges: tuple[float, ...]) -> list[float]:
    """Every edge, its float neighbours and its negative (|eta| is taken): where off-by-one bugs live."""
    out = []
    for edge in edges:
        out += [edge, math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf), -edge]
    return out


def _values(edges: tuple[float, ...]) -> st.SearchStrategy[float]:
    """Edges and their neighbours, values across and well beyond the range, and non-finite values."""
    span = edges[-1] - edges[0]
    return st.one_of(
        st.sampled_from(_near_edges(edges)),
        st.floats(edges[0] - span, edges[-1] + span),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e30]),
    )


# The strategies need the edges when the module is collected, before any fixture exists.
EDGES = CategoryScheme.from_config(load_config().categories)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(_values(EDGES.pt_edges), _values(EDGES.abseta_edges), _values(EDGES.abseta_edges)),
        min_size=1,
        max_size=40,
    ),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_assign_equals_brute_force_reference(scheme, events, dtype):
    columns = [np.array(col, dtype=dtype) for col in zip(*events)]
    got = scheme.assign(*columns)
    for index, event in zip(got, zip(*(c.tolist() for c in columns))):
        expected = _reference_name(scheme, *event)
        if expected is None:
            assert index == NO_CATEGORY, event
        else:
            assert scheme.names[index] == expected, event
            assert scheme.index_of(expected) == index


def test_name_index_round_trip(scheme):
    names = scheme.names
    assert len(set(names)) == len(names) == scheme.n_categories
    for index, name in enumerate(names):
        assert scheme.index_of(name) == index
        assert _reference_name(scheme, *scheme.center(index)) == name
