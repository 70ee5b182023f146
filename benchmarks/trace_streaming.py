"""Benchmark: streaming a 10-million-row trace, and replaying its first hour.

Writes a synthetic trace in the Azure LLM inference 2024 format (TIMESTAMP with a UTC offset,
ContextTokens, GeneratedTokens; Poisson arrivals at 5.5 requests/s, chat-like lognormal lengths)
into a temporary folder, then measures, each in a fresh process so peak memory is its own:

  read    every row through ``open_trace(...).chunks()`` (parsed and validated): rows/s, peak RSS
  replay  the first hour (``workload: {trace: {path, end_s: 3600}}``) simulated for Llama-3.1-8B
          on one H100-SXM: reading stops after the hour; peak RSS of reading + simulating

The file is deleted afterwards. Not a test: figures depend on the machine; they go into
docs/performance.md.

    python benchmarks/trace_streaming.py [--rows N] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

RATE_PER_S = 5.5
START = np.datetime64("2024-05-10T00:00:00", "us")
BLOCK_ROWS = 1_000_000


def write_trace(path: Path, rows: int, seed: int = 0, rate_per_s: float = RATE_PER_S) -> None:
    """An Azure-2024-format CSV of Poisson arrivals at ``rate_per_s``, a million rows per
    vectorised block."""
    rng = np.random.default_rng(seed)
    clock_us = 0
    schema = pa.schema([("TIMESTAMP", pa.string()), ("ContextTokens", pa.int64()),
                        ("GeneratedTokens", pa.int64())])
    options = pcsv.WriteOptions(quoting_style="none")
    with pcsv.CSVWriter(path, schema, write_options=options) as writer:
        for start in range(0, rows, BLOCK_ROWS):
            n = min(BLOCK_ROWS, rows - start)
            offsets_us = clock_us + np.cumsum(rng.exponential(1e6 / rate_per_s, n)).astype(np.int64)
            clock_us = int(offsets_us[-1])
            stamps = pa.array(START.astype(np.int64) + offsets_us, pa.timestamp("us"))
            text = pc.binary_join_element_wise(
                pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S"), "+00:00", "")
            context = np.clip(rng.lognormal(np.log(1_000), 0.8, n), 1, 32_000).astype(np.int64)
            generated = np.clip(rng.lognormal(np.log(150), 0.9, n), 1, 4_000).astype(np.int64)
            writer.write_table(pa.table([text, context, generated], schema=schema))


def measure_read(path: Path) -> dict:
    from traces.trace import open_trace

    baseline = _peak_rss_mib()
    start = time.perf_counter()
    trace = open_trace(path)
    rows = chunks = 0
    for chunk in trace.chunks():
        rows += chunk.num_rows
        chunks += 1
    wall = time.perf_counter() - start
    return {"rows": rows, "chunks": chunks, "format": trace.format, "wall_s": wall,
            "rows_per_s": rows / wall, "baseline_rss_mib": baseline,
            "peak_rss_mib": _peak_rss_mib(),
            "arrow_peak_mib": pa.default_memory_pool().max_memory() / 2**20}


def measure_replay(path: Path) -> dict:
    from sim.config.scenario import parse_scenario
    from sim.runner.run import run_scenario

    scenario = parse_scenario({
        "name": "first hour of a 10M-row trace",
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm"},
        "workload": {"trace": {"path": str(path), "format": "azure", "end_s": 3600}},
    })
    baseline = _peak_rss_mib()
    start = time.perf_counter()
    outcome = run_scenario(scenario)
    wall = time.perf_counter() - start
    summary = outcome.summary
    return {"requests": summary["requests"]["completed"],
            "rows_read": summary["trace"]["rows"]["rows_read"],
            "simulated_s": summary["duration_s"], "wall_s": wall,
            "ttft_p50_ms": summary["ttft_ms"]["p50"], "baseline_rss_mib": baseline,
            "peak_rss_mib": _peak_rss_mib(),
            "arrow_peak_mib": pa.default_memory_pool().max_memory() / 2**20}


def _peak_rss_mib() -> float:
    """This process's peak resident memory. Linux's VmHWM, not getrusage's ru_maxrss: the
    latter survives exec, so a child would inherit the peak of the parent that wrote the file."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _in_fresh_process(phase: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--phase", phase, "--file", str(path)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary file goes")
    parser.add_argument("--phase", choices=["read", "replay"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        measure = measure_read if args.phase == "read" else measure_replay
        print(json.dumps(measure(args.file)))
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="servesim-trace-") as folder:
        path = Path(folder) / "azure-2024-synthetic.csv"
        start = time.perf_counter()
        write_trace(path, args.rows)
        written = time.perf_counter() - start
        size_mib = path.stat().st_size / 2**20
        read = _in_fresh_process("read", path)
        replay = _in_fresh_process("replay", path)
    print(f"machine           {_cpu()}, "
          f"Python {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"trace file        {args.rows:,} rows, {size_mib:,.0f} MiB, written in {written:.1f} s")
    print(f"read (validated)  {read['rows']:,} rows in {read['chunks']} chunks, "
          f"{read['wall_s']:.1f} s: {read['rows_per_s']:,.0f} rows/s")
    print(f"  peak RSS        {read['peak_rss_mib']:,.0f} MiB (after imports "
          f"{read['baseline_rss_mib']:,.0f} MiB; arrow pool peak "
          f"{read['arrow_peak_mib']:,.0f} MiB)")
    print(f"replay first hour {replay['requests']:,} requests ({replay['rows_read']:,} rows read), "
          f"{replay['simulated_s']:,.0f} s simulated in {replay['wall_s']:.1f} s wall, "
          f"TTFT p50 {replay['ttft_p50_ms']:.1f} ms")
    print(f"  peak RSS        {replay['peak_rss_mib']:,.0f} MiB (after imports "
          f"{replay['baseline_rss_mib']:,.0f} MiB; arrow pool peak "
          f"{replay['arrow_peak_mib']:,.0f} MiB)")


if __name__ == "__main__":
    main()
