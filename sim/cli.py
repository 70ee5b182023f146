"""The `servesim` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim.errors import ScenarioError
from traces.errors import TraceError

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ScenarioError, TraceError) as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("servesim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servesim",
        description="Simulate an LLM serving fleet: latency and cost of a scenario.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="simulate a scenario file")
    run.add_argument("scenario", help="scenario YAML file (see examples/ and docs/scenario.md)")
    run.add_argument("--out", type=Path, help="also write requests.parquet, steps.parquet, "
                     "summary.json and scenario.yaml into this folder")
    run.add_argument("--format", choices=["table", "json"], default="table")
    run.add_argument("--seed", type=_seed, help="override the scenario's seed (an integer >= 0)")
    run.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario value, e.g. --set engine.max_num_seqs=64 "
                     "(repeatable)")
    run.set_defaults(handler=_run)

    compare = commands.add_parser(
        "compare", help="simulate several scenarios and show them side by side",
        description="The first scenario is the baseline; the others show their change against "
        "it. A scenario argument may carry its own overrides: base.yaml@hardware.gpu=a100-80gb",
    )
    compare.add_argument("scenarios", nargs="+", metavar="SCENARIO[@KEY=VALUE...]")
    compare.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override a value in every scenario")
    compare.add_argument("--seed", type=_seed, help="override every scenario's seed")
    compare.add_argument("--format", choices=["table", "json"], default="table")
    compare.set_defaults(handler=_compare)

    for name, helptext in (("models", "list catalog models"), ("gpus", "list catalog GPUs"),
                           ("prices", "list catalog GPU prices with source and date")):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--format", choices=["table", "json"], default="table")
        sub.set_defaults(handler=_catalog_handler(name))
    _add_traces_commands(commands)
    return parser


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    from sim.run import run_scenario
    from sim.scenario import load_scenario
    from sim.report import format_table

    scenario = load_scenario(args.scenario, args.overrides)
    if args.seed is not None:
        scenario = scenario.with_seed(args.seed)
    with _progress(enabled=not args.no_progress) as progress:
        outcome = run_scenario(scenario, progress=progress)
    if args.out:
        _write_outputs(args.out, outcome)
    if args.format == "json":
        print(json.dumps(outcome.summary, indent=2))
    else:
        print(format_table(outcome.summary))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sim.comparison import compare, format_comparison
    from sim.run import run_scenario
    from sim.scenario import load_scenario

    names, summaries = [], []
    for argument in args.scenarios:
        path, *own = argument.split("@")
        scenario = load_scenario(path, [*args.overrides, *own])
        if args.seed is not None:
            scenario = scenario.with_seed(args.seed)
        summaries.append(run_scenario(scenario).summary)
        names.append(argument if own or scenario.name in names else scenario.name)
    rows = compare(summaries)
    if args.format == "json":
        print(json.dumps({"scenarios": names, "metrics": rows}, indent=2))
    else:
        print(format_comparison(names, rows))
    return 0


def _write_outputs(folder: Path, outcome) -> None:
    from sim.scenario import scenario_yaml

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(f"--out {folder}: cannot create the folder ({exc})") from None
    outcome.result.records.to_parquet(folder / "requests.parquet", index=False)
    outcome.result.steps.to_parquet(folder / "steps.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(outcome.summary, indent=2) + "\n")
    (folder / "scenario.yaml").write_text(scenario_yaml(outcome.deployment.scenario))


class _progress:
    """A tqdm bar over arrivals on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from tqdm import tqdm

        def update(done: int, total: int) -> None:
            if self.bar is None:
                self.bar = tqdm(total=total, unit="req", desc="simulating", file=sys.stderr,
                                leave=False)
            self.bar.update(done - self.bar.n)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _catalog_handler(name: str):
    def handler(args: argparse.Namespace) -> int:
        rows = _catalog_rows(name)
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        else:
            columns = list(rows[0]) if rows else []
            widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
            print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
            for row in rows:
                print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
        return 0

    return handler


def _catalog_rows(name: str) -> list[dict]:
    if name == "models":
        from sim.model_catalog import list_models, load_model

        rows = []
        for model_id in list_models():
            m = load_model(model_id)
            rows.append({
                "id": m.id,
                "params_b": round(m.total_params / 1e9, 2),
                "active_params_b": round(m.active_params / 1e9, 2),
                "layers": m.num_layers,
                "kv_heads": m.num_kv_heads,
                "kv_kib_per_token_bf16": m.kv_bytes_per_token("bf16") // 1024,
                "max_context": m.max_position_embeddings,
            })
        return rows
    if name == "gpus":
        from sim.gpu import list_gpus, load_gpu

        return [
            {
                "id": g.id, "hbm_gib": round(g.hbm_gib, 2), "bandwidth_gb_s": g.mem_bandwidth_gb_per_s,
                "bf16_tflops": g.bf16_tflops, "fp8_tflops": g.fp8_tflops or "-",
                "interconnect": g.interconnect,
            }
            for g in map(load_gpu, list_gpus())
        ]
    from sim.price import list_prices

    return [
        {"gpu": p.gpu_id, "tier": p.tier, "usd_per_gpu_hour": round(p.usd_per_gpu_hour, 4),
         "providers": p.providers, "as_of": p.as_of, "source": p.source}
        for p in list_prices()
    ]


# --- servesim traces: inspect, convert and list request traces -------------------------------


def _add_traces_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("traces", help="inspect, convert and list request traces")
    actions = group.add_subparsers(dest="traces_command", required=True)

    info = actions.add_parser("info", help="figures of a trace: rate, burstiness, lengths, reuse")
    _trace_source_arguments(info)
    info.add_argument("--bucket-s", type=float, default=60.0,
                      help="seconds per bucket of the rate over time (default 60)")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    info.set_defaults(handler=_traces_info)

    convert = actions.add_parser("convert", help="write a trace as normalized Parquet")
    _trace_source_arguments(convert)
    convert.add_argument("out", type=Path, help="the Parquet file to write (OUT.parquet)")
    convert.set_defaults(handler=_traces_convert)

    listing = actions.add_parser("list", help="list the bundled traces with rows and source")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=_traces_list)


def _trace_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", help="a trace file, or a bundled name (servesim traces list)")
    parser.add_argument("--format", dest="trace_format", default=None, metavar="FORMAT",
                        help="the trace's format (detected from the file when left out)")
    parser.add_argument("--on-bad-rows", choices=["error", "skip"], default="error",
                        help="stop at the first bad row (default) or drop and count bad rows")
    parser.add_argument("--column", action="append", default=[], type=_column_mapping,
                        metavar="KEY=NAME", help="column mapping of a generic trace, repeated: "
                        "--column arrival=ts --column arrival_unit=ms --column input=prompt ...")


def _column_mapping(text: str) -> tuple[str, str]:
    key, sep, name = text.partition("=")
    if not sep or not key.strip() or not name.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=NAME (e.g. arrival=ts), got {text!r}")
    return key.strip(), name.strip()


def _open_trace(args: argparse.Namespace):
    from traces.trace import open_trace

    return open_trace(args.trace, args.trace_format, on_bad_rows=args.on_bad_rows,
                      options=dict(args.column))


def _traces_info(args: argparse.Namespace) -> int:
    from traces.stats import format_stats, trace_stats

    trace = _open_trace(args)
    stats = trace_stats(trace.chunks(), trace.prefix_block_tokens, bucket_s=args.bucket_s)
    bad_rows = trace.report.summary() if args.on_bad_rows == "skip" else None
    if args.json:
        print(json.dumps({"trace": str(trace.path), "format": trace.format, **stats,
                          "bad_rows": bad_rows}, indent=2))
        return 0
    print(f"{trace.path.name} ({trace.format})")
    print(format_stats(stats))
    if bad_rows is not None:
        print(_bad_rows_text(bad_rows))
    return 0


def _bad_rows_text(summary: dict) -> str:
    lines = [f"bad rows: {summary['rows_dropped']:,} dropped of {summary['rows_read']:,} read"]
    for reason, count in summary["dropped_by_reason"].items():
        lines.append(f"  {count:,} x {reason}; first: {summary['first_examples'][reason]}")
    return "\n".join(lines)


def _traces_convert(args: argparse.Namespace) -> int:
    if args.out.suffix != ".parquet":
        raise TraceError(f"{args.out}: the output must be a .parquet file (normalized traces "
                         f"are Parquet), e.g. {args.out.with_suffix('.parquet')}")
    from traces.formats.normalized import write_normalized

    trace = _open_trace(args)
    try:
        write_normalized(trace.chunks(), args.out, trace.prefix_block_tokens, trace.format)
    except OSError as exc:
        args.out.unlink(missing_ok=True)
        raise TraceError(f"{args.out}: cannot write the file ({exc})") from None
    except BaseException:
        args.out.unlink(missing_ok=True)  # no half-written file left behind
        raise
    report = trace.report
    print(f"wrote {report.rows_kept:,} rows of {trace.path.name} ({trace.format}) to {args.out}")
    if args.on_bad_rows == "skip":
        print(_bad_rows_text(report.summary()))
    return 0


def _traces_list(args: argparse.Namespace) -> int:
    from traces.bundled import names
    from traces.trace import open_trace

    sources = _bundled_sources()
    rows = []
    for name in names():
        trace = open_trace(name)
        count = sum(chunk.num_rows for chunk in trace.chunks())
        source, license_ = sources.get(name, ("-", "-"))
        rows.append({"name": name, "format": trace.format, "rows": count, "source": source,
                     "license": license_})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    text = [{**row, "rows": f"{row['rows']:,}"} for row in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in text)) for c in text[0]}
    print("  ".join(c.ljust(w) for c, w in widths.items()).rstrip())
    for row in text:
        cells = [row[c].rjust(w) if c == "rows" else row[c].ljust(w) for c, w in widths.items()]
        print("  ".join(cells).rstrip())
    return 0


def _bundled_sources() -> dict[str, tuple[str, str]]:
    """name -> (source, license), read from the table in traces/bundled/PROVENANCE.md."""
    from importlib.resources import files

    text = files("traces.bundled").joinpath("PROVENANCE.md").read_text(encoding="utf-8")
    sources = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            sources[cells[0].strip("`")] = (cells[2], cells[3].split(" (")[0])
    return sources


if __name__ == "__main__":
    raise SystemExit(main())
