"""The `servesim traces` commands: inspect, convert and list request traces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from traces.errors import TraceError


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    group = commands.add_parser(name, help=helptext)
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
    from traces.bundled import names, sources_and_licenses
    from traces.trace import open_trace

    sources = sources_and_licenses()
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
