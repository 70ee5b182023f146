"""The price table: every priced GPU has a sourced, dated price, and the table is reproducible."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from sim.config.price import PRICES_FILE, list_prices, price_for
from sim.engine.errors import ScenarioError
from sim.engine.gpu import list_gpus

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_IDS = ["a100-40gb", "a100-80gb", "h100-sxm", "h200", "l4", "l40s", "a10g", "t4",
                "b200", "mi300x"]


@pytest.mark.parametrize("gpu_id", REQUIRED_IDS)
def test_every_required_gpu_has_an_on_demand_price(gpu_id: str) -> None:
    price = price_for(gpu_id)
    assert price.tier == "on_demand" and price.gpu_id == gpu_id
    assert 0.05 < price.usd_per_gpu_hour < 20
    assert "skypilot-catalog" in price.source and "providers:" in price.source
    assert price.as_of == "2026-11"
    assert price.providers >= 1


@pytest.mark.parametrize(
    ("gpu_id", "tier", "usd", "providers"),
    [
        ("h100-sxm", "on_demand", 2.64, 10),
        ("a100-80gb", "on_demand", 1.765, 7),
        ("h200", "on_demand", 3.50, 7),
        ("l40s", "on_demand", 1.0464, 7),
        ("h100-sxm", "spot", 1.7254, 4),
    ],
)
def test_pinned_prices(gpu_id: str, tier: str, usd: float, providers: int) -> None:
    price = price_for(gpu_id, tier)
    assert price.usd_per_gpu_hour == pytest.approx(usd, abs=1e-4)
    assert price.providers == providers


def test_spot_is_cheaper_than_on_demand_where_several_providers_sell_it() -> None:
    for price in list_prices():
        if price.tier == "spot" and price.providers >= 2:
            assert price.usd_per_gpu_hour < price_for(price.gpu_id).usd_per_gpu_hour


def test_every_priced_gpu_is_in_the_gpu_catalog() -> None:
    assert {p.gpu_id for p in list_prices()} <= set(list_gpus())


def test_unpriced_gpu_tells_the_user_to_set_a_price() -> None:
    with pytest.raises(ScenarioError, match=r"'rtx-4090'.*hardware\.price_usd_per_hour"):
        price_for("rtx-4090")
    with pytest.raises(ScenarioError, match=r"spot.*'mi300x'"):
        price_for("mi300x", "spot")


def test_unknown_tier_names_the_valid_ones() -> None:
    with pytest.raises(ScenarioError, match="'reserved'.*on_demand, spot"):
        price_for("h100-sxm", "reserved")


def test_table_is_what_the_build_script_derives_from_the_raw_prices() -> None:
    script = ROOT / "scripts" / "build_prices.py"
    spec = importlib.util.spec_from_file_location("build_prices", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    raw = ROOT / "sim" / "catalog" / "prices_raw" / "gpu_prices.csv"
    with raw.open(newline="", encoding="utf-8") as f:
        derived = build.derive(list(csv.DictReader(f)))
    with PRICES_FILE.open(newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == derived


def test_raw_prices_ship_with_license_and_provenance() -> None:
    folder = ROOT / "sim" / "catalog" / "prices_raw"
    assert "Apache License" in (folder / "LICENSE-Apache-2.0.txt").read_text()
    assert "skypilot-org/skypilot-catalog" in (folder / "PROVENANCE.md").read_text()


def _scenario(hardware: dict):
    from sim.config.scenario import parse_scenario

    return parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm", "replicas": 3, **hardware},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 1}, "num_requests": 1,
                     "lengths": {"input": 10, "output": 10}},
    })


def test_reserved_tier_is_on_demand_less_the_given_discount() -> None:
    from sim.config.deployment import resolve

    price = resolve(_scenario({"price_tier": "reserved", "reserved_discount": 0.4})).price
    assert price.usd_per_gpu_hour == pytest.approx(0.6 * price_for("h100-sxm").usd_per_gpu_hour)
    assert price.usd_per_hour == pytest.approx(3 * price.usd_per_gpu_hour)
    assert price.tier.startswith("reserved (40 %") and "reserved_discount" in price.source
    spot = resolve(_scenario({"price_tier": "spot"})).price
    assert spot.usd_per_gpu_hour == price_for("h100-sxm", "spot").usd_per_gpu_hour


@pytest.mark.parametrize("hardware, message", [
    ({"price_tier": "reserved"}, "needs reserved_discount"),
    ({"reserved_discount": 0.3}, "only to price_tier reserved"),
    ({"price_tier": "reserved", "reserved_discount": 1.0}, "reserved_discount"),
])
def test_reserved_settings_are_checked(hardware: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        _scenario(hardware)
