"""FSR study (issue 34): does sigma_fit follow the detector's resolution with final-state radiation in the sample?

For each generator variant (``default``: 12 % of muons radiate, exponential in the momentum
fraction; ``variant``: another Z spectrum, 8 % with a harder spectrum, tails and sigma_pred spread;
see ``benchmarks/lineshape_study.py``) two samples are generated that differ only in the true
resolution (same seed, every k scaled by 1.10), and each ``fit.fsr`` model (``none``: the DCB holds
the radiation; ``exponential``: a radiating Breit-Wigner, the DCB the detector alone) calibrates
both (``--steps all``, then the closure test). Per run it prints:

- the factor ratio between the two samples against the truth 1.10: mean, rms, categories within 2.5 sigma;
- factor / k (the truth) over the categories with more than 10 k events: mean and rms;
- the closure: per bin fit / median - 1 of the k sample, its chi2/ndf against 1, and the worst bin
  (bins with more than 5 k events);
- categories accepted at the nominal attempt, the largest chi2/NDF above 1 k events, the mean
  fit seconds per category (all attempts, from fit_params.json), the median FSR fraction and scale.

    .venv/bin/python benchmarks/fsr_study.py --events 300000 --work /tmp/fsr_study
    .venv/bin/python benchmarks/fsr_study.py --events 300000 --seed 7 --work /tmp/fsr_study_s7 --variants variant

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
K_SCALE = 1.10
MODELS = ("none", "exponential")


def _run(args: list[str]) -> None:
    done = subprocess.run(args, cwd=ROOT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")


def _generate(work: Path, name: str, settings: Path, events: int, scaled: bool, seed: int | None) -> Path:
    """A Data sample of ``events`` (MC and signal small: the study calibrates Data), k scaled by K_SCALE when ``scaled``."""
    root = work / (name + ("_scaled" if scaled else ""))
    if (root / "2018" / "truth.json").exists():
        return root
    truth_k: list[str] = []
    if scaled:
        base = json.loads((work / name / "2018" / "truth.json").read_text())
        path = work / f"{name}_scaled_k_data.json"
        path.write_text(json.dumps({c: k * K_SCALE for c, k in base["k_data"].items()}))
        truth_k = ["--k-data", str(path)]
    _run([PY, "-m", "lib.generate", "--output", str(root), "--year", "2018", "--n-data", str(events), "--n-mc", "20000",
          "--n-signal", "20000", "--config", str(settings), *truth_k, *(["--seed", str(seed)] if seed is not None else [])])  # fmt: skip
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


def _summary(sample: Path, out: Path, out_scaled: Path) -> dict[str, str]:
    directory = out / "binned" / "2018" / "Data_2018"
    fits = _rows(directory / "fit_results.csv")
    factors = _rows(directory / "calibration_factors.csv")
    scaled_factors = _rows(out_scaled / "binned" / "2018" / "Data_2018" / "calibration_factors.csv")
    truth = json.loads((sample / "2018" / "truth.json").read_text())["k_data"]
    nominal = sum(1 for r in fits.values() if r["quality"] == "ok" and r["attempts"] == "1")
    chi2 = [float(r["chi2_ndf"]) for r in fits.values() if int(r["n_events"]) > 1000]
    large = [c for c, r in factors.items() if int(r["n_events"]) > 10_000 and r["source"] == "fit"]
    over_k = [float(factors[c]["calibration_factor"]) / truth[c] for c in large]
    ratios, pulls = [], []
    for cat, row in factors.items():
        f1, f2 = float(row["calibration_factor"]), float(scaled_factors[cat]["calibration_factor"])
        e1, e2 = float(row["calibration_factor_err"]), float(scaled_factors[cat]["calibration_factor_err"])
        ratio = f2 / f1
        ratios.append(ratio)
        error = ratio * ((e1 / f1) ** 2 + (e2 / f2) ** 2) ** 0.5 if e1 > 0 and e2 > 0 else float("inf")
        pulls.append(abs(ratio - K_SCALE) / error if error > 0 else float("inf"))
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
        "factor/k (>10k)": f"{statistics.mean(over_k) - 1:+.2%} +- {statistics.pstdev(over_k):.2%}",
        "ratio mean / rms": f"{statistics.mean(ratios) / K_SCALE - 1:+.2%} / {statistics.pstdev(ratios) / K_SCALE:.2%}",
        "ratio within 2.5 sigma": f"{sum(p < 2.5 for p in pulls)}/36",
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
    parser.add_argument("--variants", nargs="+", default=["default", "variant"], choices=sorted(PATCHES))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="fit.fsr models to compare")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    generator = yaml.safe_load((ROOT_DIR / "configs" / "generator.yaml").read_text())
    config = yaml.safe_load((ROOT_DIR / "configs" / "default.yaml").read_text())
    table = []
    for variant in args.variants:
        settings = _write_yaml(work / f"generator_{variant}.yaml", _merge(generator, PATCHES[variant]))
        sample = _generate(work, variant, settings, args.events, False, args.seed)
        scaled = _generate(work, variant, settings, args.events, True, args.seed)
        for model in args.models:
            cfg = _write_yaml(work / f"config_{model}.yaml", _merge(config, {"fit": {"fsr": model}}))
            out, out_scaled = work / f"out_{variant}_{model}", work / f"out_{variant}_scaled_{model}"
            _calibrate(sample, out, cfg)
            _calibrate(scaled, out_scaled, cfg)
            row = {"variant": variant, "fit.fsr": model} | _summary(sample, out, out_scaled)
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
