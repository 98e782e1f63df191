"""FSR study (issue 34): does sigma_fit follow the detector's resolution with final-state radiation in the sample?

Each scenario is a pair of Data samples that differ only in the true resolution: the same seed,
every muon smeared with the k of its own |eta| region, 1 / 1 / 1 in the first and 1.08 / 1.16 /
1.30 (barrel / overlap / endcap) in the second, the mass built from those muons (as the issue's
trees). Scenarios: the generator's default settings or the study's "variant" ones (another Z
spectrum, 4 % of muons 2.2x wider, a wider sigma_pred spread; ``benchmarks/lineshape_study.py``),
with FSR of the exponential or the QED-like shape, or none. Each ``fit.fsr`` model (``none``: the
DCB holds the radiation; ``exponential``: a radiating Breit-Wigner, the DCB the detector alone)
calibrates both samples (``--steps all``, then the closure test). Per run it prints:

- the factor ratio between the two samples against the truth (the ratio of the categories' true
  k, ``truth.json``): mean, rms, categories within 2.5 sigma;
- the closure of the k-map sample: chi2/ndf against 1 and the worst bin (bins with more than 5 k events);
- categories accepted at the nominal attempt, the largest chi2/NDF above 1 k events, the mean fit
  seconds per category (all attempts, from fit_params.json; both models on the same machine, one
  after the other), the median FSR fraction and scale.

    .venv/bin/python benchmarks/fsr_study.py --events 1000000 --work /tmp/fsr_study
    .venv/bin/python benchmarks/fsr_study.py --events 1000000 --seed 7 --work /tmp/fsr_study_s7 --scenarios variant-qed

(samples are generated once per ``--work`` directory and reused; another ``--seed`` needs another one).
Numbers go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))

from benchmarks.lineshape_study import PATCHES, _merge, _write_yaml  # noqa: E402

PY = sys.executable
MODELS = ("none", "exponential")
MUON_K = {"unit": "1,1,1", "k_map": "1.08,1.16,1.30"}  # per |eta| region: barrel, overlap, endcap
# Scenario: (generator settings patch, FSR shape or None for no FSR).
SCENARIOS = {
    "default-exponential": ("default", "exponential"),
    "variant-exponential": ("variant", "exponential"),
    "variant-qed": ("variant", "qed"),
    "variant-recovered": ("variant", "recovered"),
    "variant-nofsr": ("variant", None),
}


def _run(args: list[str]) -> None:
    done = subprocess.run(args, cwd=ROOT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")


def _generate(work: Path, scenario: str, which: str, settings: Path, events: int, seed: int | None) -> Path:
    """A Data sample of ``events`` (MC and signal small: the study calibrates Data) with per-muon k ``MUON_K[which]``."""
    root = work / f"{scenario}_{which}"
    if (root / "2018" / "truth.json").exists():
        return root
    shape = SCENARIOS[scenario][1]
    fsr = ["--fsr-probability", "0"] if shape is None else ["--fsr-shape", shape]
    _run([PY, "-m", "lib.generate", "--output", str(root), "--year", "2018", "--n-data", str(events), "--n-mc", "20000",
          "--n-signal", "20000", "--config", str(settings), "--muon-k-data", MUON_K[which], *fsr,
          *(["--seed", str(seed)] if seed is not None else [])])  # fmt: skip
    return root


def _calibrate(sample: Path, out: Path, config: Path) -> float:
    base = [PY, "getCalibrationFactor.py", "--years", "2018", "--ifbinned", "--input_path", str(sample), "--output_path", str(out),
            "--config", str(config), "--no-plots", "--no-dask-client", "--overwrite"]  # fmt: skip
    start = time.monotonic()
    _run(base + ["--steps", "all"])
    seconds = time.monotonic() - start
    _run(base + ["--closure_test"])
    return seconds


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as handle:
        return {r.get("cat_name", r.get("bin")): r for r in csv.DictReader(handle)}


def _fit_records(directory: Path) -> list[dict]:
    payload = json.loads((directory / "fit_params.json").read_text())
    records = payload.values() if isinstance(payload, dict) else payload
    return [r for r in records if isinstance(r, dict) and "attempts" in r]


def _summary(unit: Path, k_map: Path, out_unit: Path, out_k_map: Path) -> dict[str, str]:
    directory = out_k_map / "binned" / "2018" / "Data_2018"
    fits = _rows(directory / "fit_results.csv")
    factors = _rows(out_unit / "binned" / "2018" / "Data_2018" / "calibration_factors.csv")
    k_map_factors = _rows(directory / "calibration_factors.csv")
    truth_unit = json.loads((unit / "2018" / "truth.json").read_text())["k_data"]
    truth_k_map = json.loads((k_map / "2018" / "truth.json").read_text())["k_data"]
    nominal = sum(1 for r in fits.values() if r["quality"] == "ok" and r["attempts"] == "1")
    chi2 = [float(r["chi2_ndf"]) for r in fits.values() if int(r["n_events"]) > 1000]
    deviations_ratio, pulls = [], []
    for cat, row in factors.items():
        truth = truth_k_map[cat] / truth_unit[cat]
        f1, f2 = float(row["calibration_factor"]), float(k_map_factors[cat]["calibration_factor"])
        e1, e2 = float(row["calibration_factor_err"]), float(k_map_factors[cat]["calibration_factor_err"])
        ratio = f2 / f1
        deviations_ratio.append(ratio / truth - 1)
        error = ratio * ((e1 / f1) ** 2 + (e2 / f2) ** 2) ** 0.5 if e1 > 0 and e2 > 0 else float("inf")
        pulls.append(abs(ratio - truth) / error if error > 0 else float("inf"))
    closure = [r for r in _rows(directory / "closure_results_resolutionBinning.csv").values()
               if int(r["nEvents"]) > 5000 and r["ratio"] not in ("", "nan")]  # fmt: skip
    deviations = [float(r["ratio"]) - 1 for r in closure]
    errors = [float(r.get("ratio_err") or "nan") for r in closure]
    chi2_closure = sum((d / e) ** 2 for d, e in zip(deviations, errors)) / len(closure) if closure else float("nan")
    records = _fit_records(directory)
    seconds = [float(r["seconds"]) for r in records]
    fsr = [(r["params"]["fsr_fraction"]["val"], r["params"]["fsr_scale"]["val"]) for r in records if "fsr_fraction" in r["params"]]
    return {
        "nominal": f"{nominal}/36",
        "max chi2/ndf (>1k)": f"{max(chi2):.2f}",
        "ratio / truth - 1: mean / rms": f"{statistics.mean(deviations_ratio):+.2%} / {statistics.pstdev(deviations_ratio):.2%}",
        "ratio within 2.5 sigma": f"{sum(p < 2.5 for p in pulls)}/{len(pulls)}",
        "closure chi2/ndf (>5k)": f"{chi2_closure:.1f}",
        "closure worst (>5k)": f"{max(deviations, key=abs):+.1%}" if deviations else "-",
        "closure bins": " ".join(f"{d:+.1%}" for d in deviations),
        "fit s/category": f"{statistics.mean(seconds):.2f}",
        "FSR fraction / scale (median)": (f"{statistics.median(f for f, _ in fsr):.3f} / {statistics.median(s for _, s in fsr):.2f} GeV"
                                          if fsr else "-"),  # fmt: skip
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="Data events per sample (both samples of a variant)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fsr_study"))
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: lib.generate's); a new --work per seed")
    parser.add_argument("--scenarios", nargs="+", default=["default-exponential", "variant-exponential", "variant-qed"],
                        choices=sorted(SCENARIOS))  # fmt: skip
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="fit.fsr models to compare")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    generator = yaml.safe_load((ROOT_DIR / "configs" / "generator.yaml").read_text())
    config = yaml.safe_load((ROOT_DIR / "configs" / "default.yaml").read_text())
    table = []
    for scenario in args.scenarios:
        patch = SCENARIOS[scenario][0]
        settings = _write_yaml(work / f"generator_{patch}.yaml", _merge(generator, PATCHES[patch]))
        unit = _generate(work, scenario, "unit", settings, args.events, args.seed)
        k_map = _generate(work, scenario, "k_map", settings, args.events, args.seed)
        for model in args.models:
            cfg = _write_yaml(work / f"config_{model}.yaml", _merge(config, {"fit": {"fsr": model}}))
            out_unit, out_k_map = work / f"out_{scenario}_unit_{model}", work / f"out_{scenario}_k_map_{model}"
            _calibrate(unit, out_unit, cfg)
            _calibrate(k_map, out_k_map, cfg)
            row = {"scenario": scenario, "fit.fsr": model} | _summary(unit, k_map, out_unit, out_k_map)
            table.append(row)
            print(" | ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
    print()
    print("| " + " | ".join(table[0]) + " |")
    print("|" + "---|" * len(table[0]))
    for row in table:
        print("| " + " | ".join(row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
