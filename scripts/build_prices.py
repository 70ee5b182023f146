"""Derive the simulator's price table from a raw per-instance cloud price CSV.

    python scripts/build_prices.py sim/catalog/prices_raw/gpu_prices.csv -o sim/catalog/prices.csv

The raw table has one row per (provider, instance type). One price per GPU and tier comes out:

* on_demand: each provider's median over its instance types of the on-demand $/GPU-hour
  (itself a median over regions), then the median across providers. Medians, because one
  provider or one region can be 5x the others (GCP us-east4, hyperscalers vs GPU clouds).
* spot: each provider's lowest spot $/GPU-hour, then the median across providers that sell spot.

Rerun it whenever the raw table is refreshed; the catalog never hand-edits a price.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# Raw GPU names -> catalog ids. H100 rows are SXM5 instances; PCIe and NVL variants (slower
# memory and links) and GH200 have no catalog entry and are left out. A10 and A10G are
# different cards (the A10G is AWS's slower variant), so each keeps its own rows.
GPU_IDS: dict[str, str] = {
    "A100-40GB": "a100-40gb",
    "A100-80GB": "a100-80gb",
    "H100": "h100-sxm",
    "H200": "h200",
    "B200": "b200",
    "L4": "l4",
    "L40S": "l40s",
    "A10": "a10",
    "A10G": "a10g",
    "T4": "t4",
    "MI300X": "mi300x",
}

# RunPod lists L40S on-demand at half its spot price; the raw README flags the pair as swapped
# at the source, so they are swapped back here.
SWAPPED_TIERS = {("runpod", "L40S")}

AS_OF = "2026-11"
SOURCE = ("skypilot-org/skypilot-catalog catalogs/v7 "
          "(commit per provider in prices_raw/gpu_prices.csv)")
COLUMNS = ("gpu_id", "tier", "usd_per_gpu_hour", "providers", "source", "as_of")


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def collect(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(gpu_id, tier) -> provider -> that provider's per-instance prices."""
    prices: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        gpu_id = GPU_IDS.get(row["gpu"])
        if gpu_id is None:
            continue
        provider = row["provider"]
        on_demand = _number(row["on_demand_usd_per_gpu_hour_median"])
        spot = _number(row["spot_usd_per_gpu_hour_min"])
        if (provider, row["gpu"]) in SWAPPED_TIERS:
            on_demand, spot = spot, on_demand
        if on_demand is not None:
            prices[(gpu_id, "on_demand")][provider].append(on_demand)
        if spot is not None:
            prices[(gpu_id, "spot")][provider].append(spot)
    return prices


def derive(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The price table rows, sorted by GPU id then tier."""
    table = []
    for (gpu_id, tier), by_provider in sorted(collect(rows).items()):
        per_provider = {
            name: (statistics.median(values) if tier == "on_demand" else min(values))
            for name, values in by_provider.items()
        }
        names = sorted(per_provider)
        table.append({
            "gpu_id": gpu_id,
            "tier": tier,
            "usd_per_gpu_hour": f"{statistics.median(per_provider.values()):.4f}",
            "providers": str(len(names)),
            "source": f"{SOURCE}; providers: {', '.join(names)}",
            "as_of": AS_OF,
        })
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_csv", type=Path, help="per-instance price CSV (gpu_prices.csv)")
    parser.add_argument("-o", "--output", type=Path, help="where to write; stdout if omitted")
    args = parser.parse_args(argv)
    with args.raw_csv.open(newline="", encoding="utf-8") as f:
        table = derive(list(csv.DictReader(f)))
    out = args.output.open("w", newline="", encoding="utf-8") if args.output else sys.stdout
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    if args.output:
        out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
