"""`servesim calibrate ...`: turn measurements into step samples and fit latency profiles.

Registered under the ``servesim.commands`` entry point, so the simulator's CLI lists these
commands without importing calibration code itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from calibrate.errors import CalibrationError
from calibrate.profile_file import profile_document, write_profile
from calibrate.profile_fit import fit_profile, held_out_errors, median_ape
from calibrate.sources import h100_vllm_steps, splitwise
from calibrate.step_fit import physically_possible, profile_coefficients
from calibrate.step_sample import StepSample, read_samples, write_samples
from sim.latency_profile import load_profile

SOURCES: dict[str, Callable[[], list[StepSample]]] = {
    "h100-vllm-steps": h100_vllm_steps.read,
    "splitwise": splitwise.read,
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate", help="fit latency profiles to measured step times",
        description="Turn measurements into step samples (ingest) and fit a latency profile "
        "to them (fit). See docs/calibration.md.")
    jobs = calibrate.add_subparsers(dest="job", required=True)

    ingest = jobs.add_parser("ingest", help="bundled measurements as a step-sample Parquet file")
    ingest.add_argument("source", choices=sorted(SOURCES), help="which measurements")
    ingest.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    ingest.set_defaults(handler=_ingest)

    fit = jobs.add_parser("fit", help="fit a latency profile to step samples")
    fit.add_argument("samples", type=Path, nargs="+", help="step-sample Parquet files")
    fit.add_argument("--out", type=Path, required=True, help="profile YAML file to write")
    fit.add_argument("--name", default="fitted", help="the profile's name")
    fit.add_argument("--start", default="default",
                     help="profile whose coefficients start the fit (default: default)")
    fit.add_argument("--no-per-config", dest="per_config", action="store_false",
                     help="only the cross-configuration fit, no per-configuration overrides")
    fit.set_defaults(handler=_fit)


def _ingest(args: argparse.Namespace) -> int:
    samples = SOURCES[args.source]()
    _writable(args.out)
    write_samples(samples, args.out)
    configs = len({s.config for s in samples})
    print(f"wrote {len(samples):,} step samples of {configs} configurations to {args.out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    samples: list[StepSample] = []
    for path in args.samples:
        samples += read_samples(path)
    kept = physically_possible(samples)
    if not kept:
        raise CalibrationError("no sample is physically possible for its model and GPU: check "
                               "the configurations the samples name")
    start = profile_coefficients(load_profile(args.start))(kept[0])
    fitted = fit_profile(kept, start, per_config=args.per_config)
    held_out = held_out_errors(kept, start)
    print(f"{len(kept):,} samples fitted ({len(samples) - len(kept)} faster than the roofline "
          "allows were left out)\n")
    print("| model | GPU | TP | dtype | samples | cross-config fit | own override | held out |")
    print("|---|---|---|---|---|---|---|---|")
    for config in sorted({s.config for s in kept}):
        own = [s for s in kept if s.config == config]
        cross = median_ape(own, lambda s: fitted.base)
        override = (f"{median_ape(own, fitted.coefficients):.1f} %"
                    if config in fitted.per_config else "-")
        held = f"{held_out[config]:.1f} %" if config in held_out else "-"
        print(f"| {' | '.join(map(str, config))} | {len(own):,} | {cross:.1f} % | {override} "
              f"| {held} |")
    print("\n(median absolute percentage error of the predicted step time; held out: the "
          "cross-configuration fit without that configuration's samples)")
    sources = sorted({s.source for s in kept})
    source = (f"Fitted by servesim calibrate fit to {len(kept):,} measured step times from "
              f"{', '.join(sources)}; configurations: "
              + "; ".join(f"{m} on {g} TP{tp} {d}" for m, g, tp, d in sorted({s.config for s in kept})))
    _writable(args.out)
    write_profile(args.out, profile_document(args.name, source, fitted.base, fitted.overrides()))
    print(f"\nwrote {args.out}")
    return 0


def _writable(path: Path) -> None:
    if not path.parent.exists():
        raise CalibrationError(f"--out {path}: folder {path.parent} does not exist")
