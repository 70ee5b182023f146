"""Benchmark: replaying tens of millions of trace rows across a 64-replica fleet in bounded memory.

Writes a synthetic trace in the Azure LLM inference 2024 format (Poisson arrivals at 300
requests/s, the chat-like lengths of ``trace_streaming.py``) for each row count, then replays
all of it on 64 H100-SXM replicas of Llama-3.1-8B (least-outstanding router), each replay in a
fresh process so its peak memory is its own:

  streamed   ``servesim run --out DIR --stream``'s path: records written to Parquet as the
             run goes, steps kept as totals
  in memory  the default path (every record and step row kept until the summary), for the
             smallest row count only, as the contrast

Progress lines go to stderr while a replay runs. Files are deleted afterwards. Not a test:
the figures depend on the machine; they go into docs/performance.md.

    python benchmarks/long_replay.py [--rows N ...] [--replicas R] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trace_streaming import _peak_rss_mib, write_trace  # noqa: E402

RATE_PER_S = 300.0  # ~4.7 requests/s per replica of 64: a busy fleet that keeps up
PROGRESS_EVERY_S = 60.0


def replay(path: Path, replicas: int, streamed: bool) -> dict:
    from sim.config.scenario import parse_scenario
    from sim.runner.run import run_scenario

    scenario = parse_scenario({
        "name": "long replay", "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm", "replicas": replicas},
        "workload": {"trace": {"path": str(path), "format": "azure"}},
    })
    start = time.perf_counter()
    last = [start]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            print(f"  {done:,} requests in {now - start:,.0f} s, peak RSS "
                  f"{_peak_rss_mib():,.0f} MiB", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(dir=path.parent) as out:
        stream_to = Path(out) / "requests.parquet" if streamed else None
        outcome = run_scenario(scenario, progress=progress, stream_to=stream_to)
        written = stream_to.stat().st_size / 2**20 if streamed else None
    summary = outcome.summary
    return {"requests": summary["requests"]["arrived"], "simulated_s": summary["duration_s"],
            "wall_s": time.perf_counter() - start, "peak_rss_mib": _peak_rss_mib(),
            "ttft_p99_ms": summary["ttft_ms"]["p99"], "parquet_mib": written}


def _in_fresh_process(path: Path, replicas: int, streamed: bool) -> dict:
    argv = [sys.executable, __file__, "--phase", "streamed" if streamed else "kept",
            "--file", str(path), "--replicas", str(replicas)]
    done = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def _duration(seconds: float) -> str:
    return f"{seconds:,.1f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 20_000_000])
    parser.add_argument("--replicas", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go")
    parser.add_argument("--phase", choices=["streamed", "kept"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(replay(args.file, args.replicas, args.phase == "streamed")))
        return
    lines = [f"{args.replicas} x h100-sxm, Llama-3.1-8B, least-outstanding router; Azure-2024-"
             f"format trace, Poisson arrivals at {RATE_PER_S:.0f} requests/s; "
             f"Python {platform.python_version()}",
             "",
             "| trace rows | results | simulated | wall | µs per request | peak memory | "
             "p99 TTFT |",
             "|---|---|---|---|---|---|---|"]
    for rows in sorted(args.rows):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="servesim-replay-") as folder:
            path = Path(folder) / "trace.csv"
            print(f"writing {rows:,} rows", file=sys.stderr, flush=True)
            write_trace(path, rows, rate_per_s=RATE_PER_S)
            modes = [True, False] if rows == min(args.rows) else [True]
            for streamed in modes:
                mode = "streamed to Parquet" if streamed else "kept in memory"
                print(f"replaying {rows:,} rows, {mode}", file=sys.stderr, flush=True)
                run = _in_fresh_process(path, args.replicas, streamed)
                lines.append(
                    f"| {rows:,} | {mode} | {run['simulated_s'] / 3600:,.1f} h | "
                    f"{_duration(run['wall_s'])} | {1e6 * run['wall_s'] / run['requests']:,.0f}"
                    f" | {run['peak_rss_mib']:,.0f} MiB | {run['ttft_p99_ms']:,.1f} ms |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
