"""Cloud GPU prices per GPU-hour, read from ``sim/catalog/prices.csv``.

The table is derived from public price listings by ``scripts/build_prices.py``; every row
carries its source and date, because a cost figure is only as good as its price and prices
move. A scenario can always override the catalog with ``hardware.price_usd_per_hour``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from sim.engine.errors import ScenarioError

PRICES_FILE = Path(__file__).parents[1] / "catalog" / "prices.csv"

Tier = Literal["on_demand", "spot"]
TIERS: tuple[str, ...] = ("on_demand", "spot")


@dataclass(frozen=True, slots=True)
class Price:
    """The typical price of one GPU for one hour; ``providers`` is how many listings back it."""

    gpu_id: str
    tier: Tier
    usd_per_gpu_hour: float
    source: str
    as_of: str
    providers: int


def list_prices() -> list[Price]:
    """Every catalog price, sorted by GPU id then tier."""
    return list(_table().values())


def price_for(gpu_id: str, tier: str = "on_demand") -> Price:
    """The catalog price of ``gpu_id`` in ``tier``; ScenarioError if there is none."""
    if tier not in TIERS:
        raise ScenarioError(f"price tier {tier!r} is not known: use one of {', '.join(TIERS)}")
    table = _table()
    if (gpu_id, tier) not in table:
        priced = sorted({g for g, t in table if t == tier})
        raise ScenarioError(
            f"no {tier} price for GPU {gpu_id!r} in the price catalog (priced: "
            f"{', '.join(priced)}): set hardware.price_usd_per_hour in the scenario"
        )
    return table[(gpu_id, tier)]


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, str], Price]:
    with PRICES_FILE.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        (row["gpu_id"], row["tier"]): Price(
            gpu_id=row["gpu_id"],
            tier=row["tier"],  # type: ignore[arg-type]  # checked by the catalog tests
            usd_per_gpu_hour=float(row["usd_per_gpu_hour"]),
            source=row["source"],
            as_of=row["as_of"],
            providers=int(row["providers"]),
        )
        for row in rows
    }


@dataclass(frozen=True, slots=True)
class FleetPrice:
    """What a fleet pays per hour: its GPUs at one (average) price, with the price's source."""

    gpus: int
    usd_per_gpu_hour: float
    tier: str
    source: str
    as_of: str

    @property
    def usd_per_hour(self) -> float:
        return self.gpus * self.usd_per_gpu_hour
