"""The output directory of a run: writable, one configuration's outputs only, backups, and the provenance.

A step run with one configuration beside the outputs of another would leave tables, JSON and
closure verdict that disagree without saying so: the directory is checked before any work, and
``provenance.json`` records what produced it, so that step 3 run alone can still state it.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

from lib import __version__
from lib.categories import CategoryScheme
from lib.config import Config, override_keys, resolve_fit_spec
from lib.errors import CalibrationError
from lib.io.atomic import write_text_atomic
from lib.options import RunOptions
from lib.run.reduction import InputSource

__all__ = ["PROVENANCE_JSON", "backup", "check_writable", "prepare_output_dir", "read_provenance", "remove_outputs", "root_version",
           "write_provenance"]  # fmt: skip

log = logging.getLogger(__name__)

PROVENANCE_JSON = "provenance.json"


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and write a probe in it, so an unwritable directory fails before any work, not after the fits."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CalibrationError(f"output directory {out_dir} is not writable ({err.strerror})") from err


_CONFIGURATION_KEYS = {
    "config_fingerprint": "config", "config_fingerprint_without_overrides": "config", "binned": "binned", "sample": "sample",
}  # fmt: skip


def fit_spec_hashes(config: Config, binned: bool, backend: str | None) -> dict[str, str]:
    """Per category, a hash of its resolved nominal fit specification (defaults and its overrides)."""
    names = CategoryScheme.from_config(config.categories).names
    return {name: resolve_fit_spec(config, name, binned, backend).fingerprint() for name in names}


def tuned_categories(config: Config) -> dict[str, list[str]]:
    """Per category, the ``fit.overrides`` keys (exact or wildcard) that apply to it; untuned ones left out."""
    matched = {name: override_keys(config, name) for name in CategoryScheme.from_config(config.categories).names}
    return {name: keys for name, keys in matched.items() if keys}


def _configuration_differences(previous: dict[str, object], options: RunOptions, config: Config) -> list[str]:
    """What differs between the run that filled a directory and this one, as ``name old vs new``.

    Inputs may differ: every cache is keyed by the input files, so new inputs cannot pick up old results.
    ``--fixCat CAT`` may change CAT's own fit (its ``fit.overrides``, the users' tuning loop): it
    compares the configuration without the overrides, and then every other category's fit
    specification with the one recorded in the provenance.
    """
    by_parts = bool(options.fix_cat) and "config_fingerprint_without_overrides" in previous
    key = "config_fingerprint_without_overrides" if by_parts else "config_fingerprint"
    now = {key: config.fingerprint(without_overrides=by_parts), "binned": options.binned, "sample": options.sample_label}
    differences = [
        f"{_CONFIGURATION_KEYS[name]} {previous[name]} vs {value}"
        for name, value in now.items()
        if name in previous and previous[name] != value
    ]
    if by_parts and not differences:
        recorded: dict[str, str] = previous.get("fit_specs", {})  # type: ignore[assignment]
        specs = fit_spec_hashes(config, options.binned, options.backend)
        changed = sorted(n for n, h in recorded.items() if n != options.fix_cat and specs.get(n) != h)
        if changed:
            differences.append(f"fit.overrides change the fits of {', '.join(changed)}, not only {options.fix_cat}")
    return differences


def _check_same_configuration(out_dir: Path, options: RunOptions, config: Config) -> bool:
    """Refuse to mix outputs of two configurations in one directory; True when --overwrite lets them be replaced.

    A step run with one configuration next to outputs of another would leave tables, JSON and
    closure verdict that disagree without saying so. --fixCat is refused even with --overwrite:
    merging one category into another configuration's fits is wrong whatever is replaced.

    Raises:
        CalibrationError: the directory holds another configuration's results.
    """
    differences = _configuration_differences(read_provenance(out_dir), options, config)
    if not differences:
        return False
    if options.overwrite and not options.fix_cat:
        return True
    if options.fix_cat:
        remedy = "--fixCat cannot merge into it; re-run step1 for every category with --overwrite"
    else:
        remedy = "use another --extraString/--output_path or --overwrite"
    raise CalibrationError(
        f"output directory {out_dir} holds results of a different configuration ({', '.join(differences)}); {remedy}"
    )


def prepare_output_dir(out_dir: Path, options: RunOptions, config: Config, steps: set[str]) -> bool:
    """Check the directory before any work starts; True when another configuration's outputs must go first."""
    check_writable(out_dir)
    if options.closure_test or not steps & {"step1", "step2"}:
        return False
    return _check_same_configuration(out_dir, options, config)


def _top_level_outputs(out_dir: Path) -> list[Path]:
    """The directory's output files (subdirectories such as plots and hidden caches excluded)."""
    return [p for p in out_dir.iterdir() if p.is_file() and not p.name.startswith(".")]


def remove_outputs(out_dir: Path) -> None:
    """Delete the top-level outputs of another configuration (after --backup), so none outlives the run.

    Caches stay: they are keyed by content, so the new configuration cannot pick up a stale entry.
    """
    files = _top_level_outputs(out_dir)
    for path in files:
        path.unlink()
    log.warning("--overwrite: removed %d outputs of a different configuration from %s", len(files), out_dir)


def backup(out_dir: Path) -> None:
    """Copy the current top-level outputs into ``backup_<UTC timestamp>/`` before they are replaced."""
    files = _top_level_outputs(out_dir)
    if not files:
        return
    dest = out_dir / f"backup_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    dest.mkdir(exist_ok=True)
    for path in files:
        shutil.copy2(path, dest / path.name)
    log.info("backed up %d files to %s", len(files), dest)


def write_provenance(out_dir: Path, options: RunOptions, config: Config, source: InputSource) -> None:
    """Record what produced this directory's outputs, so step 3 run alone can still state it."""
    payload = {
        "inputs_fingerprint": source.fingerprint,
        "skipped_files": list(source.skipped),
        "input_path": str(options.input_path or config.input.stage1_path),
        "config_fingerprint": config.fingerprint(),
        "config_fingerprint_without_overrides": config.fingerprint(without_overrides=True),
        # What each category was fitted with, so a --fixCat run can tell whether it changes only its
        # category, and a reader which categories were tuned by hand (fit.overrides).
        "fit_specs": fit_spec_hashes(config, options.binned, options.backend),
        "tuned_categories": tuned_categories(config),
        "tool_version": __version__,
        "binned": options.binned,
        "sample": options.sample_label,
    }
    write_text_atomic(out_dir / PROVENANCE_JSON, json.dumps(payload, indent=1, sort_keys=True))


def read_provenance(out_dir: Path) -> dict[str, object]:
    """The directory's ``provenance.json`` (empty when no step 1-2 has run there yet)."""
    path = out_dir / PROVENANCE_JSON
    return json.loads(path.read_text()) if path.exists() else {}


def root_version() -> str:
    """The ROOT wheel's version for the correction's description; never an error, whatever the installation."""
    try:
        from importlib.metadata import version

        return f"ROOT wheel {version('ROOT')}"
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return "ROOT version unknown"
