"""The step tables: CSVs read back to the very numbers written, LaTeX tables as the analysis note takes them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pytest

from lib.errors import InputError
from lib.io.tables import read_csv, read_rows, write_csv, write_latex_table


@dataclass(frozen=True)
class _Row:
    cat_name: str
    value: float
    n_events: int
    note: str


def test_a_csv_reads_back_to_the_same_numbers_and_types(tmp_path):
    rows = [
        _Row("30-45_BB", 1 / 3, 73018, ""),
        _Row("a,b", 1.2345678901234567e-17, 0, 'say "x"'),
        _Row("62-200_EE", math.nan, -1, "failed"),
        _Row("huge", 1.7976931348623157e308, 2**62, "inf"),
    ]
    path = write_csv(tmp_path / "t.csv", [asdict(r) for r in rows])
    assert [repr(r) for r in read_rows(path, _Row)] == [repr(r) for r in rows]  # repr: exact floats, NaN equal to NaN
    assert path.read_text().splitlines()[0] == "cat_name,value,n_events,note"
    assert read_csv(path)[2]["value"] == "nan" and read_csv(path)[0]["note"] == ""


def test_an_infinite_value_is_written_as_nan(tmp_path):
    path = write_csv(tmp_path / "t.csv", [{"cat_name": "x", "value": math.inf}])
    assert path.read_text() == "cat_name,value\nx,nan\n"


@pytest.mark.parametrize("text", ["", "cat_name,value\nx,1,2\n", "cat_name,value\nx,1\ny,2,3\n"])
def test_a_damaged_csv_is_one_input_error_naming_the_file(tmp_path, text):
    path = tmp_path / "fit_results.csv"
    path.write_text(text)
    with pytest.raises(InputError, match="fit_results.csv is not a readable table") as err:
        read_csv(path)
    assert "\n" not in str(err.value)


def test_a_missing_csv_names_the_step_to_run(tmp_path):
    with pytest.raises(InputError, match="not found: run the step that produces it first"):
        read_csv(tmp_path / "median_for_cats.csv")


def test_an_empty_table_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty table"):
        write_csv(tmp_path / "t.csv", [])


def test_the_latex_table_rounds_escapes_and_marks_missing_values(tmp_path):
    rows = [
        {"cat_name": "30-45_BB", "fit_val": 1.13844453, "n_events": 73018, "fit_quality": "ok"},
        {"cat_name": "62-200_EE", "fit_val": "fallback", "n_events": 12, "fit_quality": "50%_low"},
        {"cat_name": "45-52_OO", "fit_val": math.nan, "n_events": 0, "fit_quality": "failed"},
    ]
    columns = [("cat_name", "Category"), ("fit_val", r"$\sigma_{fit}$"), ("n_events", "Events"), ("fit_quality", "Fit")]
    path = write_latex_table(tmp_path / "t.tex", rows, columns, 3, "Factors, Data 2018")
    assert path.read_text() == (
        "\\begin{table}[htbp]\n\\centering\n\\caption{Factors, Data 2018}\n\\begin{tabular}{lrrr}\n\\hline\n"
        "Category & $\\sigma_{fit}$ & Events & Fit \\\\\n\\hline\n"
        "30-45\\_BB & 1.138 & 73018 & ok \\\\\n"
        "62-200\\_EE & fallback & 12 & 50\\%\\_low \\\\\n"
        "45-52\\_OO & -- & 0 & failed \\\\\n"
        "\\hline\n\\end{tabular}\n\\end{table}\n"
    )
    full = write_latex_table(tmp_path / "full.tex", rows[:1], columns, None, "c").read_text()
    assert "30-45\\_BB & 1.13844453 & 73018 & ok" in full
