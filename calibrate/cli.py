"""`servesim calibrate ...`: turn measurements into step samples and fit latency profiles.

Registered under the ``servesim.commands`` entry point, so the simulator's CLI lists these
commands without importing calibration code itself. Only the arguments live here; a job's
code (calibrate.jobs, with scipy, pandas and the simulator) is imported when the job runs.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path

# the measurements `calibrate ingest` reads (calibrate.jobs maps them to their readers)
SOURCE_NAMES = ["h100-vllm-steps", "llmservingsim-runs", "splitwise"]


def _job(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module("calibrate.jobs"), name)(args)

    return run


def add_commands(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate", help="fit latency profiles to measured step times",
        description="Profile a real vLLM engine (run) or bring measurements made elsewhere "
        "(ingest, ingest-bench), fit a latency profile to them (fit) and check it by replaying "
        "measured runs (validate). See docs/calibration.md.")
    jobs = calibrate.add_subparsers(dest="job", required=True)

    ingest = jobs.add_parser(
        "ingest", help="bundled measurements in the tidy forms the other jobs read",
        description="Step-time sources become one step-sample Parquet file; run sources (per "
        "request timestamps) become one folder per run under --out.")
    ingest.add_argument("source", choices=SOURCE_NAMES,
                        help="which measurements")
    ingest.add_argument("--out", type=Path, required=True,
                        help="Parquet file (step sources) or folder (run sources) to write")
    ingest.set_defaults(handler=_job("_ingest"))

    bench = jobs.add_parser(
        "ingest-bench", help="a vLLM bench serve result (--save-detailed) as a measured run",
        description="The result file has no engine settings: give the ones the server ran with.")
    bench.add_argument("file", type=Path, help="result JSON of vllm bench serve")
    _add_engine_identity(bench)
    bench.add_argument("--max-num-seqs", type=int, default=256)
    bench.add_argument("--max-num-batched-tokens", type=int, default=8192)
    bench.add_argument("--num-gpu-blocks", type=int, help="the server's '# GPU blocks' figure")
    bench.add_argument("--no-prefix-caching", dest="prefix_caching", action="store_false")
    bench.add_argument("--out", type=Path, required=True, help="run folder to write")
    bench.set_defaults(handler=_job("_ingest_bench"))

    log = jobs.add_parser(
        "ingest-log", help="vLLM iteration-detail log lines as step samples",
        description="Reads the lines a server started with --enable-logging-iteration-details "
        "prints; the engine's settings are not in them, so give them.")
    log.add_argument("file", type=Path, help="the server's log")
    _add_engine_identity(log)
    log.add_argument("--weight-dtype", default="bf16")
    log.add_argument("--num-gpu-blocks", type=int, required=True,
                     help="the server's KV block count ('# GPU blocks' in its start-up log)")
    log.add_argument("--block-size", type=int, default=16)
    log.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    log.set_defaults(handler=_job("_ingest_log"))

    run = jobs.add_parser(
        "run", help="profile a real vLLM engine step by step (needs an environment with vLLM)",
        description="Runs calibrate/vllm_driver.py with --vllm-python through a sweep of "
        "prefill and decode steps, and writes the measured steps as step samples "
        "(OUT/steps.parquet) next to the raw result (OUT/result.json).")
    run.add_argument("--model", type=Path, required=True,
                     help="folder with the model's config.json (weights are not needed)")
    run.add_argument("--device", required=True,
                     help="GPU catalog id or device file of the machine it runs on")
    run.add_argument("--python", "--vllm-python", dest="python", required=True,
                     help="python of the environment with vLLM (or, with --engine "
                     "transformers, with torch and transformers)")
    run.add_argument("--engine", choices=["vllm", "transformers"], default="vllm",
                     help="vllm: drive the serving engine (default); transformers: time plain "
                     "forward passes, for GPU machines without vLLM")
    run.add_argument("--weight-dtype", default="bf16", choices=["fp32", "bf16", "fp16"],
                     help="format the engine runs in (fp32 for CPUs without fast bf16)")
    run.add_argument("--max-num-batched-tokens", type=int, default=2048)
    run.add_argument("--max-num-seqs", type=int, default=128)
    run.add_argument("--max-model-len", type=int, default=2048)
    run.add_argument("--tensor-parallel", type=int, default=1)
    run.add_argument("--no-prefix-caching", dest="prefix_caching", action="store_false",
                     help="run the engine without prefix caching (on by default, as in vLLM; "
                     "on, the sweep also profiles prompts whose prefix is cached)")
    run.add_argument("--quick", action="store_true", help="a smaller sweep (a few minutes)")
    run.add_argument("--out", type=Path, required=True, help="folder to write")
    run.set_defaults(handler=_job("_run"))

    validate = jobs.add_parser(
        "validate", help="replay measured runs through the simulator and report the errors")
    validate.add_argument("runs", type=Path, nargs="*", help="run folders (run.json + "
                          "requests.parquet)")
    validate.add_argument("--metrics", type=Path,
                          help="a vLLM /metrics scrape taken after a benchmark; compared with "
                          "--scenario, the simulated benchmark")
    validate.add_argument("--metrics-before", type=Path,
                          help="a scrape taken before the benchmark (counters are cumulative)")
    validate.add_argument("--scenario", type=Path, help="scenario of the benchmark (--metrics)")
    validate.add_argument("--profile", default="default",
                          help="latency profile: shipped name or YAML path (default: default)")
    validate.add_argument("--report", type=Path, metavar="FOLDER",
                          help="also write report.md with the tables and charts (PNG) of "
                          "measured vs simulated distributions into this folder")
    validate.set_defaults(handler=_job("_validate"))

    fit = jobs.add_parser(
        "fit", help="fit a latency profile to step samples and/or measured runs",
        description="Step samples (Parquet files) give the cross-configuration coefficients and "
        "per-configuration overrides; measured runs (folders) then refit their configuration's "
        "override so that replaying them matches their mean TPOT, E2E and TTFT.")
    fit.add_argument("inputs", type=Path, nargs="+",
                     help="step-sample Parquet files and/or run folders")
    fit.add_argument("--out", type=Path, required=True, help="profile YAML file to write")
    fit.add_argument("--name", default="fitted", help="the profile's name")
    fit.add_argument("--start", default="default",
                     help="profile whose coefficients start the fit (default: default)")
    fit.add_argument("--no-per-config", dest="per_config", action="store_false",
                     help="only the cross-configuration fit, no per-configuration overrides")
    fit.set_defaults(handler=_job("_fit"))

    fit_runs = jobs.add_parser(
        "fit-runs", help="train the per-operator model on measured runs' mean latencies",
        description="Train the per-operator step-time model's global coefficients on runs "
        "given as whole-run and per-stage figures (the format of calibrate/data/vllm_h100_runs: "
        "RUNS.csv, and stages.csv beside it). Every evaluation simulates every run's load; "
        "simulated points are cached, so an interrupted fit resumes. Overloaded runs are not "
        "fitted. See docs/calibration.md.")
    fit_runs.add_argument("runs", type=Path, help="RUNS.csv")
    fit_runs.add_argument("--out", type=Path, required=True, help="profile YAML file to write")
    fit_runs.add_argument("--stages", type=Path,
                          help="per-stage figures (default: stages.csv beside RUNS.csv, if any)")
    fit_runs.add_argument("--hold-out", action="append", default=[], metavar="MODEL",
                          help="leave this model's runs out of the fit (repeatable)")
    fit_runs.add_argument("--name", default="trained", help="the profile's name")
    fit_runs.add_argument("--start",
                          help="per-operator profile the search starts from (default: the "
                          "built-in physical priors)")
    fit_runs.add_argument("--cache", type=Path,
                          help="file of simulated points to reuse and extend (default: "
                          "OUT with .cache.jsonl)")
    fit_runs.add_argument("--workers", type=int, help="processes (default: every core)")
    fit_runs.add_argument("--executor", choices=["local", "ray"], default="local",
                          help="run the simulations on this machine or a Ray cluster")
    fit_runs.add_argument("--max-evaluations", type=int, default=12,
                          help="search steps at most (each simulates every run ~11 times)")
    fit_runs.set_defaults(handler=_job("_fit_runs_command"))


def _add_engine_identity(parser: argparse.ArgumentParser) -> None:
    """What the measured server ran: measurements made elsewhere do not record it."""
    parser.add_argument("--model", required=True, help="model catalog id or config.json path")
    parser.add_argument("--gpu", required=True, help="GPU catalog id or device file")
    parser.add_argument("--tensor-parallel", type=int, default=1)
