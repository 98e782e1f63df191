"""Line-shape study (issue 18): calibrate generated samples with both Z line shapes and compare with the truth.

For each generator variant (the default settings; one with another Z pT spectrum, tails, FSR and
sigma_pred spread; "gaussian": no FSR, Gaussian residuals, a narrow spread, where factor / k is 1),
each line shape (``acceptance``, ``breit_wigner``) and each reported width (``effective``, the
DCB's 68.27 % interval; ``core``, its sigma) this script runs ``--steps all`` and the closure on
Data and MC, then prints per run:

- categories accepted at the nominal attempt, chi2/NDF of categories with more than 1 k events;
- factor / k (the truth) over the categories with more than 10 k events: mean and rms, and the
  means of same-region pairs (BB, OO, EE) and of mixed ones; how many fitted factors lie within
  2.5 of their errors of k (meaningful for "gaussian" only: elsewhere tails and FSR widen the peak);
- the closure: worst |fit/median - 1| over bins with more than 5 k events;
- the Higgs check (pure DCB on the calibrated signal sample): worst |fit/median - 1| over the tested bins;
- the ratio of factors between two samples that differ only in k (same seed, k scaled by 1.10):
  mean, rms and how many of the 36 categories lie within 2.5 sigma of the truth;
- fit seconds per category.

    .venv/bin/python benchmarks/lineshape_study.py --events 1000000 --work /tmp/lineshape
    .venv/bin/python benchmarks/lineshape_study.py --line-shapes acceptance --widths effective core --seed 7 --work /tmp/ls_s7

(samples are generated once per ``--work`` directory and reused; another ``--seed`` needs another one).

Numbers go to stdout as a Markdown table (copied into docs/validation.md).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT_DIR = Path(__file__).resolve().parent.parent
PY = sys.executable
K_SCALE = 1.10

VARIANT = {
    "processes": {"z": {"pt_gamma_shape": 2.0, "pt_gamma_scale_gev": 9.0, "rapidity_sigma": 1.6}},
    "fsr": {"probability": 0.08, "mean_fraction": 0.04},
    "smearing": {"core_fraction": 0.96, "tail_sigma": 2.2},
    "resolution": {"lognormal_sigma": 0.25},
}
# The clean check of the placement: no FSR, Gaussian residuals and a narrow sigma_pred spread, so
# the DCB core is the resolution and factor / k is 1 up to statistics in every category.
GAUSSIAN = {
    "fsr": {"probability": 0.0},
    "smearing": {"core_fraction": 1.0},
    "resolution": {"lognormal_sigma": 0.05},
}
PATCHES = {"default": {}, "variant": VARIANT, "gaussian": GAUSSIAN}
SAME_REGION_PAIRS = ("BB", "OO", "EE")


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return out


def _write_yaml(path: Path, payload: dict) -> Path:
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return path


def _run(args: list[str]) -> None:
    done = subprocess.run(args, cwd=ROOT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")


def _generate(work: Path, name: str, settings: Path, events: int, k_scale: float | None, seed: int | None) -> Path:
    root = work / name
    if (root / "2018" / "truth.json").exists():
        return root
    truth_k: list[str] = []
    if k_scale is not None:
        base = json.loads((work / name.replace("_scaled", "") / "2018" / "truth.json").read_text())
        for which in ("data", "mc"):
            scaled = {c: k * k_scale for c, k in base[f"k_{which}"].items()}
            path = work / f"{name}_k_{which}.json"
            path.write_text(json.dumps(scaled))
            truth_k += [f"--k-{which}", str(path)]
    _run([PY, "-m", "lib.generate", "--output", str(root), "--year", "2018", "--n-data", str(events), "--n-mc", str(events),
          "--n-signal", "200000", "--config", str(settings), *truth_k, *(["--seed", str(seed)] if seed is not None else [])])  # fmt: skip
    return root


def _calibrate(sample: Path, out: Path, config: Path, mc: bool) -> float:
    base = [PY, "getCalibrationFactor.py", "--years", "2018", "--ifbinned", "--input_path", str(sample), "--output_path", str(out),
            "--config", str(config), "--no-plots", "--no-dask-client", "--overwrite"] + (["--isMC"] if mc else [])  # fmt: skip
    start = time.monotonic()
    _run(base + ["--steps", "all"])
    seconds = time.monotonic() - start
    _run(base + ["--closure_test", "--validate-higgs"])
    return seconds


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as handle:
        return {r.get("cat_name", r.get("bin")): r for r in csv.DictReader(handle)}


def _summary(sample: Path, scaled: Path, out: Path, out_scaled: Path, mc: bool, seconds: float) -> dict[str, str]:
    label = "MC" if mc else "Data"
    directory = out / "binned" / "2018" / f"{label}_2018"
    fits = _rows(directory / "fit_results.csv")
    factors = _rows(directory / "calibration_factors.csv")
    scaled_factors = _rows(out_scaled / "binned" / "2018" / f"{label}_2018" / "calibration_factors.csv")
    closure = _rows(directory / "closure_results_resolutionBinning.csv")
    truth = json.loads((sample / "2018" / "truth.json").read_text())[f"k_{'mc' if mc else 'data'}"]
    nominal = sum(1 for r in fits.values() if r["quality"] == "ok" and r["attempts"] == "1")
    chi2 = [float(r["chi2_ndf"]) for r in fits.values() if int(r["n_events"]) > 1000]
    large = [c for c, r in factors.items() if int(r["n_events"]) > 10_000 and r["source"] == "fit"]
    over_k = [float(factors[c]["calibration_factor"]) / truth[c] for c in large]
    same = [f for c, f in zip(large, over_k) if c.split("_")[1] in SAME_REGION_PAIRS]
    mixed = [f for c, f in zip(large, over_k) if c.split("_")[1] not in SAME_REGION_PAIRS]
    fitted = [c for c, r in factors.items() if r["source"] == "fit" and float(r["calibration_factor_err"]) > 0]
    k_pulls = [abs(float(factors[c]["calibration_factor"]) - truth[c]) / float(factors[c]["calibration_factor_err"]) for c in fitted]
    ratios, pulls = [], []
    for cat, row in factors.items():
        f1, f2 = float(row["calibration_factor"]), float(scaled_factors[cat]["calibration_factor"])
        e1, e2 = float(row["calibration_factor_err"]), float(scaled_factors[cat]["calibration_factor_err"])
        ratio = f2 / f1
        ratios.append(ratio)
        error = ratio * ((e1 / f1) ** 2 + (e2 / f2) ** 2) ** 0.5 if e1 > 0 and e2 > 0 else float("inf")
        pulls.append(abs(ratio - K_SCALE) / error if error > 0 else float("inf"))
    closure_dev = [abs(float(r["ratio"]) - 1) for r in closure.values() if int(r["nEvents"]) > 5000 and r["ratio"] not in ("", "nan")]
    higgs = _rows(directory / "higgs_validation_resolutionBinning.csv")
    higgs_dev = [abs(float(r["ratio"]) - 1) for r in higgs.values() if r["verdict"] in ("pass", "fail")]
    return {
        "sample": label,
        "nominal": f"{nominal}/36",
        "max chi2/ndf (>1k)": f"{max(chi2):.2f}",
        "factor/k (>10k)": f"{statistics.mean(over_k):.3f} +- {statistics.pstdev(over_k):.3f}",
        "factor/k same / mixed pairs": f"{statistics.mean(same):.3f} / {statistics.mean(mixed):.3f}",
        "factor within 2.5 sigma of k": f"{sum(p < 2.5 for p in k_pulls)}/{len(k_pulls)}",
        "closure worst (>5k)": f"{max(closure_dev):.1%}" if closure_dev else "-",
        "Higgs worst (tested)": f"{max(higgs_dev):.1%}" if higgs_dev else "-",
        "k ratio mean/rms": f"{statistics.mean(ratios) / K_SCALE - 1:+.2%} / {statistics.pstdev(ratios) / K_SCALE:.2%}",
        "within 2.5 sigma": f"{sum(p < 2.5 for p in pulls)}/36",
        "steps all [s]": f"{seconds:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lineshape"))
    parser.add_argument("--line-shapes", nargs="+", default=["acceptance", "breit_wigner"])
    parser.add_argument("--seed", type=int, default=None,
                        help="generator seed of both samples of a variant (default: lib.generate's); a new --work per seed")
    parser.add_argument("--widths", nargs="+", default=["effective", "core"], choices=["effective", "core"],
                        help="the reported width of the fits (fit.width): the DCB's effective width or its core sigma")
    parser.add_argument("--variants", nargs="+", default=["default", "variant", "gaussian"], choices=sorted(PATCHES))
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    generator = yaml.safe_load((ROOT_DIR / "configs" / "generator.yaml").read_text())
    config = yaml.safe_load((ROOT_DIR / "configs" / "default.yaml").read_text())
    table = []
    for variant in args.variants:
        settings = _write_yaml(work / f"generator_{variant}.yaml", _merge(generator, PATCHES[variant]))
        sample = _generate(work, variant, settings, args.events, None, args.seed)
        scaled = _generate(work, f"{variant}_scaled", settings, args.events, K_SCALE, args.seed)
        for shape, width in itertools.product(args.line_shapes, args.widths):
            cfg = _write_yaml(work / f"config_{shape}_{width}.yaml", _merge(config, {"fit": {"line_shape": shape, "width": width}}))
            for mc in (False, True):
                out, out_scaled = work / f"out_{variant}_{shape}_{width}", work / f"out_{variant}_scaled_{shape}_{width}"
                seconds = _calibrate(sample, out, cfg, mc)
                _calibrate(scaled, out_scaled, cfg, mc)
                row = {"variant": variant, "line shape": shape, "width": width} | _summary(sample, scaled, out, out_scaled, mc, seconds)
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
