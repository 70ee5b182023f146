"""What each `servesim calibrate` job does (calibrate.cli defines their arguments): turn
measurements into step samples, fit latency profiles and check them against measured runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from calibrate.errors import CalibrationError
from calibrate.profile_file import profile_document, trained_document, write_profile
from calibrate.profile_fit import ProfileFit, fit_profile, held_out_errors, median_ape
from calibrate.replay import (comparison, deployment_for, errors_of, latencies, simulated_latencies,
                             with_coefficients)
from calibrate.request_run import RequestRun, RunConfig, load_run
from calibrate.run_fit import fit_to_runs
from calibrate.sources import (h100_vllm_steps, iteration_log, llmservingsim, prometheus,
                               splitwise, vllm_bench_result)
from calibrate.step_fit import physically_possible, profile_coefficients
from calibrate.step_sample import StepSample, read_samples, write_samples
from calibrate.validation_report import RunValidation, markdown_table, write_report
from calibrate.vllm_run import (EngineSettings, run_driver, run_transformers_driver,
                                step_samples, sweep_plan)
from sim.config.scenario import load_scenario
from sim.engine.gpu import load_gpu
from sim.engine.latency_profile import Coefficients, load_profile
from sim.runner.run import run_scenario

SOURCES: dict[str, Callable[[], list[StepSample]]] = {
    "h100-vllm-steps": h100_vllm_steps.read,
    "splitwise": splitwise.read,
}
RUN_SOURCES: dict[str, Callable[[], list[RequestRun]]] = {
    "llmservingsim-runs": llmservingsim.read,
}


def _fit_runs_command(args: argparse.Namespace) -> int:
    from calibrate.deployment_runs import read_runs
    from calibrate.operator_fit import FREE, fit_runs, start_coefficients, training_data

    runs = read_runs(args.runs, args.stages)
    known = {run.model for run in runs}
    unknown = [m for m in args.hold_out if m not in known]
    if unknown:
        raise CalibrationError(f"--hold-out {unknown[0]}: no run of that model in {args.runs} "
                               f"(models: {', '.join(sorted(known))})")
    kept = [run for run in runs if run.model not in args.hold_out]
    if args.workers is not None and args.workers < 1:
        raise CalibrationError(f"--workers must be at least 1, got {args.workers}")
    _writable(args.out)
    cache = args.cache or args.out.with_suffix(".cache.jsonl")
    print(f"fitting {len(FREE)} coefficients to {sum(not r.overloaded for r in kept)} "
          f"runs ({sum(r.overloaded for r in kept)} overloaded left out); cache {cache}",
          flush=True)
    fit = fit_runs(kept, start_coefficients(args.start), cache=cache, workers=args.workers,
                   executor=args.executor, max_evaluations=args.max_evaluations)
    fitted_runs = [run for run in kept if run.run_id in fit.runs]
    source = (f"Trained by servesim calibrate fit-runs on {len(fit.runs)} runs of {args.runs.name}"
              + (f", holding out {', '.join(args.hold_out)}" if args.hold_out else "")
              + f" ({fit.evaluations} evaluations, {fit.simulations} simulations)")
    write_profile(args.out, trained_document(args.name, source, fit.coefficients,
                                             training_data(fitted_runs)),
                  written_by="`servesim calibrate fit-runs`")
    print(f"wrote {args.out}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    if args.source in RUN_SOURCES:
        args.out.mkdir(parents=True, exist_ok=True)
        for run in RUN_SOURCES[args.source]():
            run.save(args.out / run.name)
            print(f"wrote {args.out / run.name} ({len(run.requests):,} requests)")
        return 0
    samples = SOURCES[args.source]()
    _writable(args.out)
    write_samples(samples, args.out)
    configs = len({s.config for s in samples})
    print(f"wrote {len(samples):,} step samples of {configs} configurations to {args.out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    samples: list[StepSample] = []
    runs: list[RequestRun] = []
    for path in args.inputs:
        if path.is_dir():
            runs.append(load_run(path))
        else:
            samples += read_samples(path)
    start_profile = load_profile(args.start)
    fitted = _fit_steps(samples, start_profile, args.per_config) if samples else \
        ProfileFit(Coefficients(**start_profile.coefficients))
    if runs:
        _fit_runs(runs, fitted, start_profile)
    configs = sorted({s.config for s in samples} | {r.config.key for r in runs})
    sources = sorted({s.source for s in samples} | {r.config.source for r in runs})
    source = (f"Fitted by servesim calibrate fit to {len(samples):,} measured step times and "
              f"{len(runs)} measured runs ({'; '.join(sources)}); configurations: "
              + "; ".join(f"{m} on {g} TP{tp} {d}" for m, g, tp, d in configs))
    _writable(args.out)
    write_profile(args.out, profile_document(args.name, source, fitted.base, fitted.overrides()))
    print(f"\nwrote {args.out}")
    return 0


def _fit_steps(samples: list[StepSample], start_profile, per_config: bool) -> ProfileFit:
    kept = physically_possible(samples)
    if not kept:
        raise CalibrationError("no sample is physically possible for its model and GPU: check "
                               "the configurations the samples name")
    start = profile_coefficients(start_profile)(kept[0])
    fitted = fit_profile(kept, start, per_config=per_config)
    held_out = held_out_errors(kept, start)
    print(f"{len(kept):,} step samples fitted ({len(samples) - len(kept)} faster than the "
          "roofline allows were left out)\n")
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
    return fitted


def _fit_runs(runs: list[RequestRun], fitted: ProfileFit, start_profile) -> None:
    """Refit each run configuration's override so replaying its runs matches them."""
    by_config: dict[tuple, list[RequestRun]] = {}
    for run in runs:
        by_config.setdefault(run.config.key, []).append(run)
    print("\n| run | metric | before (APE of the mean) | after |\n|---|---|---|---|")
    for key, group in sorted(by_config.items()):
        model, gpu, tp, dtype = key
        start = fitted.per_config.get(key) or start_profile.resolve(
            gpu=gpu, model=model, tensor_parallel=tp, weight_dtype=dtype,
            interconnect=load_gpu(gpu).interconnect)
        result = fit_to_runs(group, start)
        fitted.per_config[key] = result
        for run in group:
            deployment = deployment_for(run)
            before = comparison(run, with_coefficients(deployment, start))
            after = comparison(run, with_coefficients(deployment, result))
            for metric in ("TTFT", "TPOT", "E2E"):
                b = before[(before.metric == metric) & (before.stat == "mean")].ape_pct.iloc[0]
                a = after[(after.metric == metric) & (after.stat == "mean")].ape_pct.iloc[0]
                print(f"| {run.name} | {metric} | {b:.1f} % | {a:.1f} % |")


def _ingest_log(args: argparse.Namespace) -> int:
    load_gpu(args.gpu)
    engine = iteration_log.LogEngine(args.model, args.gpu, args.tensor_parallel,
                                     args.weight_dtype, args.num_gpu_blocks, args.block_size)
    samples, skipped = iteration_log.read(args.file, engine)
    _writable(args.out)
    write_samples(samples, args.out)
    left_out = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in skipped.items() if n)
    print(f"wrote {len(samples):,} step samples to {args.out}"
          + (f" (left out: {left_out})" if left_out else ""))
    return 0


def _ingest_bench(args: argparse.Namespace) -> int:
    config = RunConfig(model=args.model, gpu=args.gpu, tensor_parallel=args.tensor_parallel,
                       max_num_seqs=args.max_num_seqs,
                       max_num_batched_tokens=args.max_num_batched_tokens,
                       prefix_caching=args.prefix_caching, num_gpu_blocks=args.num_gpu_blocks)
    run, failed = vllm_bench_result.read_run(args.file, config)
    deployment_for(run)  # check now that the simulator can set this engine up
    run.save(args.out)
    print(f"wrote {args.out} ({len(run.requests):,} requests; {failed} failed requests left out)")
    return 0


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    return EngineSettings(dtype=TORCH_DTYPES[args.weight_dtype],
                          max_model_len=args.max_model_len,
                          max_num_batched_tokens=args.max_num_batched_tokens,
                          max_num_seqs=args.max_num_seqs, tensor_parallel=args.tensor_parallel,
                          prefix_caching=args.prefix_caching)


def _run(args: argparse.Namespace) -> int:
    load_gpu(args.device)  # a bad device fails now, not after the profiling
    settings = engine_settings(args)
    if args.engine == "transformers":
        print(f"timing {args.model} forward passes in transformers ...", flush=True)
        result = run_transformers_driver(args.python, args.model, args.out, settings.dtype,
                                         args.quick)
    else:
        plan = sweep_plan(settings, quick=args.quick)
        print(f"profiling {args.model} with {len(plan['phases'])} phases ...", flush=True)
        result = run_driver(args.python, args.model, plan, args.out, settings)
    samples = step_samples(result, str(args.model / "config.json"), args.device,
                           args.weight_dtype)
    write_samples(samples, args.out / "steps.parquet")
    print(f"{samples[0].source if samples else args.engine}: {len(samples):,} steps; wrote "
          f"{args.out / 'steps.parquet'} (fit it with `servesim calibrate fit`)")
    return 0


def _validate(args: argparse.Namespace) -> int:
    if args.metrics is not None:
        return _validate_metrics(args)
    if not args.runs:
        raise CalibrationError("give run folders, or --metrics with --scenario")
    validations = []
    for run in (load_run(folder) for folder in args.runs):
        simulated = simulated_latencies(run, deployment_for(run, args.profile))
        validations.append(RunValidation(run.name, latencies(run.requests), simulated,
                                         errors_of(run, simulated)))
    print(markdown_table(pd.concat([v.errors for v in validations], ignore_index=True),
                         args.profile))
    if args.report:
        if args.report.exists() and not args.report.is_dir():
            raise CalibrationError(f"--report {args.report}: give a folder (report.md and the "
                                   "charts go into it)")
        path = write_report(args.report, validations, args.profile)
        print(f"\nwrote {path} and its charts")
    return 0


def _validate_metrics(args: argparse.Namespace) -> int:
    if args.scenario is None:
        raise CalibrationError("--metrics needs --scenario: the benchmark, as a scenario, to "
                               "simulate")
    measured = prometheus.read(args.metrics, args.metrics_before)
    simulated = run_scenario(load_scenario(args.scenario)).summary
    rows = [("requests", measured["requests"], simulated["requests"]["completed"])]
    for figure in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        rows.append((f"{figure[:-3].upper()} mean (ms)", measured[figure],
                     simulated[figure]["mean"]))
    rows.append(("prompt tokens", measured["prompt_tokens"],
                 simulated["throughput"]["input_tokens_per_s"] * simulated["duration_s"]))
    rows.append(("prefix-cache hit rate", measured["prefix_cache_hit_rate"],
                 simulated["kv"]["prefix_cache_hit_rate"]))
    lines = ["| figure | measured | simulated | APE |", "|---|---|---|---|"]
    for name, m, s in rows:
        ape = f"{abs(s - m) / m * 100:.1f} %" if m and s is not None else "-"
        lines.append(f"| {name} | {_num(m)} | {_num(s)} | {ape} |")
    print("\n".join(lines))
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def _writable(path: Path) -> None:
    if not path.parent.exists():
        raise CalibrationError(f"--out {path}: folder {path.parent} does not exist")
