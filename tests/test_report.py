"""report.html: written by the CLI after a run, strict HTML, offline, and right about what it shows.

The output directory is made by the CLI itself (step 2 on a few thousand generated events, then
step 3), with ``fit_results.csv`` written as step 1 would have, one category failed and one
retried, so no test fits a peak. Fit plots and the closure figure are stand-in PNGs: the report
only links and embeds them. One test opens the page in headless Chromium (Debian's ``chromium``,
installed by ``.ci/run``) through the DevTools protocol on a pipe, and skips where it is missing.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import redirect_stdout
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

import html5lib
import pytest
from PIL import Image

from getCalibrationFactor import main
from lib.categories import CategoryScheme
from lib.closure import BinState, ClosureBin, judge
from lib.correction.writer import load_correction
from lib.io.tables import read_csv, write_csv
from lib.outputs import OutputDir
from lib.report import write_report
from lib.results import HIGGS_LABEL
from tests.helpers_tables import random_stage1_table

YEAR = "2018"
FAILED = "30-45_EE"
RETRIED = "45-52_BO"
FAST = ["--no-dask-client", "--workers", "0", "--no-plots"]


def _argv(root: Path, *extra: str) -> list[str]:
    return ["--input_path", str(root / "in"), "--output_path", str(root / "out"), *FAST, *extra]


def _fit_rows(out_dir: Path) -> list[dict[str, object]]:
    """``fit_results.csv`` as step 1 writes it: factors 1.2-1.3, ``FAILED`` failed, ``RETRIED`` accepted on its third attempt."""
    rows = []
    for i, m in enumerate(read_csv(out_dir / "median_for_cats.csv")):
        name = m["cat_name"]
        failed, retried = name == FAILED, name == RETRIED
        rows.append({
            "cat_name": name, "fit_val": (1.2 + 0.003 * i) * float(m["median_val_NonCal"]), "fit_err": 0.01, "status": 4 if failed else 0,
            "cov_qual": 1 if failed else 3, "quality": "failed" if failed else "ok",
            "reason": "covariance matrix not accurate (covQual 1)" if failed else "", "chi2_ndf": 1.1, "n_events": int(m["n_events"]),
            "sum_weights": float(m["n_events"]), "attempts": 6 if failed else 3 if retried else 1,
            "label": "narrower range" if failed else "tails fixed at the best minimum" if retried else "nominal",
        })  # fmt: skip
    return rows


def _json_factors(out_dir: Path, scheme) -> dict[str, float]:
    return load_correction(next(out_dir.glob("res_calib_*.json"))).factors(scheme)


def _record(out_dir: Path, kind: str, scheme, factors: dict[str, float]) -> None:
    """The factors a check (``closure`` or ``higgs``) applied, as the closure and the Higgs check record them."""
    OutputDir(out_dir).write_tested_factors(kind, scheme.names, [factors[n] for n in scheme.names])


def _closure(out_dir: Path, config, deviations: dict[int, float], tested: dict[str, float] | None = None,
             bins: dict[int, dict[str, object]] | None = None) -> None:  # fmt: skip
    """Closure CSVs as the closure test writes them: ratio 1 after calibration (1 + ``deviations[bin]``), 1.25 before.

    ``tested``: the factors it records having applied (None: none recorded); ``bins``: fields replaced per bin after calibration.
    """
    edges = list(zip(config.closure.bin_edges_gev[:-1], config.closure.bin_edges_gev[1:]))
    ratios = {OutputDir.CLOSURE_CSV: [1.0 + deviations.get(i, 0.0) for i in range(len(edges))], OutputDir.UNCALIBRATED_CSV: [1.25] * len(edges)}
    for name, values in ratios.items():
        rows = [ClosureBin(i, lo, hi, 5000, 1.0, 0.01, lo, (lo + hi) / 2, 0.001, r, 0.01, "ok", "") for i, ((lo, hi), r) in enumerate(zip(edges, values))]
        if name == OutputDir.CLOSURE_CSV:
            rows = [dataclasses.replace(r, **(bins or {}).get(r.bin, {})) for r in rows]
        judged, _ = judge(rows, config.closure)
        write_csv(out_dir / name, [b.row() for b in judged])
    (out_dir / "closure_verdict.txt").write_text("closure after calibration: stand-in\n")
    Image.new("RGB", (400, 400), "#ddeeff").save(out_dir / "closure_resolution.png")
    if tested is not None:
        _record(out_dir, "closure", CategoryScheme.from_config(config.categories), tested)


def _stand_in_plots(out_dir: Path, names: list[str]) -> None:
    """A small PNG where each fit plot would be, and the ROOT log of the failed fit."""
    (out_dir / "fits").mkdir(exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (120, 120), (40 + 5 * i, 120, 200)).save(out_dir / "fits" / f"fit_{name}.png")
    (out_dir / "logs").mkdir(exist_ok=True)
    (out_dir / "logs" / f"fit_{FAILED}.log").write_text("MIGRAD status 4\n")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[Path, Path, str]:
    """(root, output directory, stdout of step 3) after step 2, a hand-written step 1 and step 3 through the CLI."""
    root = tmp_path_factory.mktemp("report")
    path = root / "in" / YEAR / "compacted" / "data_A" / "0" / "part.parquet"
    path.parent.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(random_stage1_table(6000, 3, mass_range=(76.0, 104.0)), path)
    assert main(["--steps", "step2", *_argv(root)]) == 0
    out_dir = root / "out" / "unbinned" / YEAR / f"Data_{YEAR}"
    write_csv(out_dir / "fit_results.csv", _fit_rows(out_dir))
    stdout = io.StringIO()  # capsys is function-scoped
    with redirect_stdout(stdout):
        assert main(["--steps", "step3", *_argv(root)]) == 0
    return root, out_dir, stdout.getvalue()


def _copy(calibrated, tmp_path: Path) -> tuple[Path, Path]:
    root, out_dir, _ = calibrated
    shutil.copytree(root / "in", tmp_path / "in")
    shutil.copytree(root / "out", tmp_path / "out")
    return tmp_path, tmp_path / out_dir.relative_to(root)


def _strict(text: str) -> ET.Element:
    """Parse with html5lib in strict mode (any HTML parse error raises) and as XML (the page is polyglot)."""
    html5lib.HTMLParser(strict=True).parse(text)
    return ET.fromstring(text.split("\n", 1)[1])


def _findings(root: ET.Element) -> dict[str, tuple[str, str]]:
    """Verdict findings: topic -> (level, text)."""
    out = {}
    for li in root.iter("li"):
        spans = li.findall("span")
        if li.get("class") in ("ok", "info", "warn", "fail") and len(spans) == 2:
            out[spans[1].text] = (li.get("class"), "".join(li.itertext()))
    return out


def _fit_rows_html(root: ET.Element) -> dict[str, ET.Element]:
    table = next(t for t in root.iter("table") if t.get("class") == "fits")
    return {tr.get("id", "").removeprefix("fit-"): tr for tr in table.find("tbody")}


def test_run_ends_with_the_report_path_and_shows_the_failed_fit_and_its_fallback(calibrated, scheme):
    _, out_dir, stdout = calibrated
    assert stdout.splitlines()[-1] == f"report: {out_dir / OutputDir.REPORT_HTML}"
    root = _strict((out_dir / OutputDir.REPORT_HTML).read_text())
    findings = _findings(root)
    level, text = findings["categories"]
    assert level == "warn"
    assert "36 categories: 35 fitted, 1 failed, 1 with a fallback factor" in text
    assert f"{FAILED} (covariance matrix not accurate (covQual 1))" in text
    assert findings["retries"][0] == "info" and RETRIED in findings["retries"][1]
    assert findings["closure"][0] == "warn" and "closure not run: run --closure_test" in findings["closure"][1]
    assert next(p for p in root.iter("p") if p.get("class") == "headline").text == "look before shipping"
    rows = _fit_rows_html(root)
    assert list(rows) == scheme.names
    assert rows[FAILED].get("class") == "failed" and rows[RETRIED].get("class") == "retried"
    failed_text = "".join(rows[FAILED].itertext())
    assert "fallback:neighbour_average(" in failed_text and "covariance matrix not accurate" in failed_text
    # The factor map marks the borrowed factor.
    cells = [td for td in root.iter("td") if "fallback" in (td.get("class") or "").split()]
    assert len(cells) == 1 and cells[0].get("title", "").startswith(f"{FAILED}: ")


def test_report_is_self_contained_and_cheap(calibrated, config):
    _, out_dir, _ = calibrated
    text = (out_dir / OutputDir.REPORT_HTML).read_text()
    for external in ("<script", "<link", "http://", "https://", "@import", "url("):
        assert external not in text
    start = time.perf_counter()
    write_report(out_dir, config)
    assert time.perf_counter() - start < 0.5


def test_the_report_is_written_whatever_state_the_template_cache_is_in(calibrated, config, tmp_path, monkeypatch):
    """Jinja2's cache of the compiled page lives in the temp directory: a damaged entry or no usable folder only costs a compile."""
    from jinja2 import bccache

    from lib.report import page

    _, out_dir, _ = calibrated
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    page._template.cache_clear()
    try:
        write_report(out_dir, config)
        (entry,) = (temp / f"_jinja2-cache-{os.getuid()}").iterdir()
        entry.write_bytes(entry.read_bytes()[: len(bccache.bc_magic) + 3])  # cut short in its header, as by a full disk
        page._template.cache_clear()
        assert "correction JSON" in write_report(out_dir, config).read_text()
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        monkeypatch.setattr(tempfile, "tempdir", str(blocker))  # no folder can be made inside a file
        page._template.cache_clear()
        assert page._compiled_pages() is None
        assert "correction JSON" in write_report(out_dir, config).read_text()
    finally:
        page._template.cache_clear()


def test_later_steps_rewrite_the_report(calibrated, tmp_path, config, scheme, capsys):
    root, out_dir = _copy(calibrated, tmp_path)
    _stand_in_plots(out_dir, [])
    _closure(out_dir, config, {5: 0.2}, tested=_json_factors(out_dir, scheme))
    previous = tmp_path / "previous.json"
    shutil.copy(next(out_dir.glob("res_calib_*.json")), previous)
    assert main(["--steps", "step3", *_argv(root, "--previous", str(previous))]) == 0
    capsys.readouterr()
    page = _strict((out_dir / OutputDir.REPORT_HTML).read_text())
    findings = _findings(page)
    # Step 3 wrote a new JSON after the closure, with every factor unchanged: the closure tested these factors.
    assert next(out_dir.glob("res_calib_*.json")).stat().st_mtime > (out_dir / OutputDir.CLOSURE_CSV).stat().st_mtime
    assert findings["closure"][0] == "fail" and "worst 1.1–1.2 GeV: +20.0 % ± 1.0 %" in findings["closure"][1]
    assert "it tested" not in findings["closure"][1] and "re-run" not in findings["closure"][1]
    assert "largest change" in findings["previous JSON"][1]
    assert any(s.get("id") == "change" for s in page.iter("section"))
    runs = json.loads((out_dir / OutputDir.RUNS_JSON).read_text())
    assert [r["command"].split()[2] for r in runs] == ["step2", "step3", "step3"]
    assert runs[-1]["previous"] == str(previous.resolve())
    # A closure run without --previous keeps the comparison; a later step 1 makes the JSON stale.
    (out_dir / OutputDir.CLOSURE_CSV).touch()
    time.sleep(0.01)
    (out_dir / "fit_results.csv").touch()
    write_report(out_dir, config)
    findings = _findings(_strict((out_dir / OutputDir.REPORT_HTML).read_text()))
    assert findings["correction JSON"][0] == "fail" and "older than fit_results.csv" in findings["correction JSON"][1]
    assert "previous JSON" in findings


def test_json_of_fits_and_medians_from_different_inputs_fails(calibrated, tmp_path, config):
    """A directory whose fits and medians came from different input files (a rerun stopped after step 2) is not shipped."""
    _, out_dir = _copy(calibrated, tmp_path)
    provenance = json.loads((out_dir / OutputDir.PROVENANCE_JSON).read_text())
    stamp = {"inputs": "aaaa", "config": "cccc", "binned": True}
    provenance["steps"] = {"step1": stamp, "step2": {**stamp, "inputs": "bbbb"}}
    (out_dir / OutputDir.PROVENANCE_JSON).write_text(json.dumps(provenance))
    write_report(out_dir, config)
    findings = _findings(_strict((out_dir / OutputDir.REPORT_HTML).read_text()))
    level, text = findings["correction JSON"]
    assert level == "fail" and "made from different inputs: run --steps all" in text


def test_fit_table_shows_the_radiation_only_where_the_fits_have_it(calibrated, tmp_path, config):
    """fit.fsr fits carry their FSR fraction and mean loss into the fit table; fits without it add no columns."""
    import pandas as pd

    _, out_dir = _copy(calibrated, tmp_path)
    write_report(out_dir, config)
    assert "FSR fraction" not in (out_dir / OutputDir.REPORT_HTML).read_text()
    fits = pd.read_csv(out_dir / OutputDir.FITS_CSV, keep_default_na=False)
    first = fits.loc[0, "cat_name"]
    fits["fsr_fraction"], fits["fsr_fraction_err"], fits["fsr_scale"], fits["fsr_scale_err"] = "nan", "nan", "nan", "nan"
    fits.loc[0, ["fsr_fraction", "fsr_fraction_err", "fsr_scale", "fsr_scale_err"]] = ["0.137", "0.012", "1.83", "0.21"]
    fits.to_csv(out_dir / OutputDir.FITS_CSV, index=False)
    write_report(out_dir, config)
    page = _strict((out_dir / OutputDir.REPORT_HTML).read_text())
    headers = ["".join(th.itertext()) for th in page.iter("th") if th.get("scope") == "col"]
    assert "FSR fraction" in headers and "FSR mean loss [GeV]" in headers
    row = next(tr for tr in page.iter("tr") if tr.get("id") == f"fit-{first}")
    assert "0.1370 ± 0.0120" in "".join(row.itertext()) and "1.8300 ± 0.2100" in "".join(row.itertext())


def test_report_says_where_the_pooled_fit_found_no_radiation(calibrated, tmp_path, config):
    """fit.fsr on, the pooled fit without radiation: the fits have no FSR columns, and the note says why."""
    _, out_dir = _copy(calibrated, tmp_path)
    OutputDir(out_dir).write_shared_fsr("categories", {"shared": False, "radiation_found": False, "not_shared_because": "it found no radiation"})
    write_report(out_dir, config)
    text = " ".join("".join(p.itertext()) for p in _strict((out_dir / OutputDir.REPORT_HTML).read_text()).iter("p"))
    assert "found no radiation" in text and "fitted without a radiation component" in text and "FSR fraction" not in text
    OutputDir(out_dir).write_shared_fsr("categories", {"shared": True, "radiation_found": True, "shared_parameters": ["fsr_scale"]})
    write_report(out_dir, config)
    assert "found no radiation" not in (out_dir / OutputDir.REPORT_HTML).read_text()


def test_data_and_mc_side_by_side_with_their_ratio(calibrated, tmp_path, config):
    _, out_dir = _copy(calibrated, tmp_path)
    mc_dir = out_dir.parent / f"MC_{YEAR}"
    mc_dir.mkdir()
    rows = read_csv(out_dir / "calibration_factors.csv")
    write_csv(mc_dir / "calibration_factors.csv", [r | {"calibration_factor": float(r["calibration_factor"]) / 1.1} for r in rows])
    write_report(mc_dir, config)
    write_report(out_dir, config)  # also rewrites the MC report, which now has one
    for directory in (out_dir, mc_dir):
        page = _strict((directory / OutputDir.REPORT_HTML).read_text())
        captions = [c.text for c in page.iter("caption")]
        assert captions.count("Data") == captions.count("MC") == captions.count("Data/MC") == 4
        ratio = next(td for td in page.iter("td") if td.get("title", "").startswith("30-45_BB: Data/MC"))
        assert ratio.text == "1.100"
    mc_findings = _findings(_strict((mc_dir / OutputDir.REPORT_HTML).read_text()))
    assert mc_findings["correction JSON"][0] == "fail"  # the MC directory has factors but no JSON


def _higgs_bins(config, ratio_first: float = 1.0) -> list[dict[str, object]]:
    edges = config.higgs.bin_edges_gev
    bins = [
        ClosureBin(i, lo, hi, 2000, 1.0, 0.02, lo, lo, 0.001, ratio_first if i == 0 else 1.0, 0.02, "ok", "")
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))
    ]
    judged, _ = judge(bins, config.closure)
    return [b.row() for b in judged]


def test_higgs_check_is_shown_and_judged_for_the_sample_it_tests(calibrated, tmp_path, config, scheme):
    _, out_dir = _copy(calibrated, tmp_path)
    edges = config.higgs.bin_edges_gev
    bins = _higgs_bins(config, ratio_first=1.3)
    write_csv(out_dir / OutputDir.HIGGS_CSV, bins)
    _record(out_dir, "higgs", scheme, _json_factors(out_dir, scheme))
    verdict = f"{HIGGS_LABEL}: FAIL ({len(bins)} bins tested, chi2(ratio=1) = 225.0/{len(bins)})"
    OutputDir(out_dir).write_verdict("higgs", "\n".join(["Higgs peak before calibration: a line of another check", verdict]))
    write_report(out_dir, config)
    page = _strict((out_dir / OutputDir.REPORT_HTML).read_text())
    shown = [li.text for section in page.iter("section") if section.get("id") == "higgs" for li in section.iter("li")]
    assert verdict in shown and "Higgs peak before calibration: a line of another check" not in shown  # the check's own verdict line, as it wrote it
    level, text = _findings(page)["Higgs check"]
    # Data factors on simulated signal measure data against simulation: a warning, not a veto.
    assert level == "warn" and f"FAIL: {len(bins)} bins tested, worst {edges[0]:g}–{edges[1]:g} GeV: +30.0 % ± 2.0 %" in text
    assert "Data factors on simulated signal" in text
    assert any(s.get("id") == "higgs" for s in page.iter("section"))


def test_closure_and_higgs_check_of_other_factors_than_the_json_are_judged_alike(calibrated, tmp_path, config, scheme):
    """Both passed on the factors they record; the JSON then holds another factor: both say which, both at ⚠."""
    _, data_dir = _copy(calibrated, tmp_path)
    mc_dir = data_dir.parent / f"MC_{YEAR}"
    shutil.copytree(data_dir, mc_dir)
    for path in mc_dir.glob("res_calib_*_Data_*.json"):
        path.rename(path.with_name(path.name.replace("_Data_", "_MC_")))
    json_path = next(mc_dir.glob("res_calib_*.json"))
    factors = _json_factors(mc_dir, scheme)
    _closure(mc_dir, config, {}, tested=factors)
    write_csv(mc_dir / OutputDir.HIGGS_CSV, _higgs_bins(config))
    _record(mc_dir, "higgs", scheme, factors)
    write_report(mc_dir, config)
    findings = _findings(_strict((mc_dir / OutputDir.REPORT_HTML).read_text()))
    assert findings["closure"][0] == findings["Higgs check"][0] == "ok", findings

    tested = factors | {"45-52_BB": factors["45-52_BB"] * 1.01}
    for kind in ("closure", "higgs"):
        _record(mc_dir, kind, scheme, tested)
    write_report(mc_dir, config)
    findings = _findings(_strict((mc_dir / OutputDir.REPORT_HTML).read_text()))
    change = f"it tested other factors than {json_path.name} (45-52_BB {tested['45-52_BB']:.4f} → {factors['45-52_BB']:.4f})"
    assert findings["closure"][0] == "warn" and f"{change}: re-run --closure_test" in findings["closure"][1]
    assert findings["Higgs check"][0] == "warn" and f"{change}: re-run --closure_test --validate-higgs" in findings["Higgs check"][1]

    OutputDir(mc_dir).tested_factors_path("higgs").unlink()  # a check that records no factors cannot vouch for this JSON either
    write_report(mc_dir, config)
    level, text = _findings(_strict((mc_dir / OutputDir.REPORT_HTML).read_text()))["Higgs check"]
    assert level == "warn" and "it does not record which factors it tested" in text


def test_bin_states_read_the_same_in_the_csv_and_the_report(calibrated, tmp_path, config, scheme):
    _, out_dir = _copy(calibrated, tmp_path)
    nan = float("nan")
    few, fit_min, closure_min = 19, config.fit.min_events, config.closure.min_events
    assert few < fit_min < closure_min - 1
    _closure(out_dir, config, {}, tested=_json_factors(out_dir, scheme), bins={
        0: {"nEvents": few, "fit_val": nan, "fit_err": nan, "ratio": nan, "ratio_err": nan, "fit_quality": "not fitted"},
        1: {"nEvents": closure_min - 1},
        2: {"fit_quality": "failed", "ratio_err": nan},
    })  # fmt: skip
    rows = read_csv(out_dir / OutputDir.CLOSURE_CSV)
    assert [r["state"] for r in rows[:4]] == [BinState.NOT_FITTED, BinState.NOT_TESTED, BinState.FIT_FAILED, BinState.TESTED]
    assert rows[0]["verdict"] == f"not fitted: {few} events < fit.min_events"
    assert rows[1]["verdict"] == f"not tested: {closure_min - 1} events < closure.min_events ({closure_min})"
    assert rows[2]["verdict"] == "fail"
    write_report(out_dir, config)
    page = _strict((out_dir / OutputDir.REPORT_HTML).read_text())
    table = next(t for t in page.iter("table") if t.get("class") == "validation")
    cells = [["".join(td.itertext()) for td in tr.findall("td")] for tr in table.find("tbody")]
    # columns: events, sigma_fit, median, fit/median - 1, verdict, and the same two before calibration
    assert cells[0][3:5] == ["not fitted", rows[0]["verdict"]]
    assert cells[1][3:5] == ["+0.0 % ± 1.0 %", rows[1]["verdict"]]
    assert cells[2][3:5] == ["fit failed", "fail"]
    assert "fit failed" not in " ".join(cells[0] + cells[1])
    edges = config.closure.bin_edges_gev
    assert f"worst {edges[2]:g}–{edges[3]:g} GeV: fit failed" in _findings(page)["closure"][1]


def test_provenance_and_json_name_root_by_its_own_release(calibrated):
    release = pytest.importorskip("lib.fitting.model").ROOT.gROOT.GetVersion()
    _, out_dir, _ = calibrated
    page = _strict((out_dir / OutputDir.REPORT_HTML).read_text())
    row = next(tr for tr in page.iter("tr") if tr.find("th") is not None and tr.find("th").text == "versions (last run)")
    versions = "".join(row.itertext())
    assert f"ROOT {release}," in versions and f"ROOT {metadata.version('ROOT')}" not in versions
    assert f"ROOT {release}," in load_correction(next(out_dir.glob("res_calib_*.json"))).model.description
    # A process that has not imported ROOT gets the same release without importing it.
    probe = "import sys; from lib.fitting.backend import root_version; print(root_version(), 'ROOT' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == [release, "False"], done.stderr


def test_pdf_report(calibrated, tmp_path, capsys):
    root, out_dir = _copy(calibrated, tmp_path)
    assert main(["--steps", "step3", *_argv(root, "--report-pdf")]) == 0
    capsys.readouterr()
    data = (out_dir / OutputDir.REPORT_PDF).read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 4
    assert OutputDir.REPORT_PDF not in (out_dir / OutputDir.REPORT_HTML).read_text()  # the report does not list itself


def test_missing_previous_is_refused_before_any_work(calibrated, tmp_path, capsys):
    root, _ = _copy(calibrated, tmp_path)
    assert main(["--steps", "step3", *_argv(root, "--previous", str(tmp_path / "nope.json"))]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: --previous {tmp_path / 'nope.json'}: no such file"]


# ---------------------------------------------------------------------------------------------
# Headless Chromium through the DevTools protocol on a pipe (no websocket library needed)

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--remote-debugging-pipe", "--window-size=1400,3000",
)  # fmt: skip


class DevTools:
    """One Chromium process driven over ``--remote-debugging-pipe`` (fds 3 and 4, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser, self._write_end = os.pipe()
        self._read_end, from_browser = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our messages, fd 4 writes its answers
            a, b = os.dup(to_browser), os.dup(from_browser)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._read_end, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}} | ({"sessionId": session} if session else {})
        os.write(self._write_end, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._receive(deadline))

    def evaluate(self, session: str, expression: str) -> object:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)["result"]["value"]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write_end)
        os.close(self._read_end)


def _problems(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and failed requests among the events."""
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            out.append(f"request failed: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent" and not params["request"]["url"].startswith(("file://", "data:")):
            out.append(f"request leaves the folder: {params['request']['url']}")
    return out


def test_report_in_headless_chromium(calibrated, tmp_path, config, scheme):
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    _, out_dir = _copy(calibrated, tmp_path)
    _stand_in_plots(out_dir, scheme.names)
    _closure(out_dir, config, {}, tested=_json_factors(out_dir, scheme))
    report = write_report(out_dir, config).resolve()
    browser = DevTools(binary, Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", {}, session)
        browser.call("Page.navigate", {"url": report.as_uri()}, session)
        browser.wait_for("Page.loadEventFired")
        shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)["data"])
        dom = browser.evaluate(session, "document.documentElement.outerHTML")
        broken_images = browser.evaluate(session, "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        links = browser.evaluate(session, "Array.from(document.links).map(a => a.href)")
        ids = set(browser.evaluate(session, "Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
        rows = browser.evaluate(session, "Array.from(document.querySelectorAll('table.fits tbody tr th')).map(th => th.textContent)")
        thumbs = browser.evaluate(session, "document.querySelectorAll('figure.thumb img').length")
    finally:
        browser.close()
    (tmp_path / "report.png").write_bytes(shot)
    with Image.open(tmp_path / "report.png") as image:
        assert image.width > 1300 and image.height > 3000  # the full page (less a scrollbar), beyond the first screen
    assert _problems(browser.events) == []
    assert rows == scheme.names and thumbs == len(scheme.names)
    assert broken_images == []
    assert all(name in dom for name in scheme.names)
    assert len(links) > 2 * len(scheme.names)
    for href in links:
        url = urlparse(href)
        assert url.scheme == "file", href
        path = Path(unquote(url.path))
        assert path.exists(), href
        if url.fragment:
            assert path == report and url.fragment in ids, href


def test_report_says_what_sigma_fit_is(tmp_path, scheme):
    """The fits' width definition from fit_params.json; fits written before it was recorded are core sigmas."""
    from lib.report.outputs import read_sample
    from lib.report.page import _width_note

    def width_definition() -> str:
        return read_sample(OutputDir(tmp_path), scheme).width_definition

    assert width_definition() == ""
    (tmp_path / "fit_params.json").write_text(json.dumps({"30-45_BB": {"width_definition": "effective"}, "30-45_BO": {}}))
    assert width_definition() == "core/effective"
    (tmp_path / "fit_params.json").write_text(json.dumps({"30-45_BB": {"width_definition": "effective"}}))
    assert width_definition() == "effective" and "68.27 %" in _width_note("effective")
    not_fitted = {"name": "30-45_EE", "ok": False, "reason": "19 events < fit.min_events"}  # what step 1 records for it
    (tmp_path / "fit_params.json").write_text(json.dumps({"30-45_BB": {"width_definition": "effective"}, "30-45_EE": not_fitted}))
    assert width_definition() == "effective"
    assert _width_note("core/effective") == "" and _width_note("") == ""
