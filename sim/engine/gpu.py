"""GPU datasheet figures, read from ``sim/catalog/gpus.yaml``.

The catalog is data so a user can read where each number came from and add a GPU without
touching code. Every entry is checked when the file is loaded, so a typo fails at once with the
GPU id and the field named, not later inside the simulation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from sim.engine.errors import ScenarioError

CATALOG_FILE = Path(__file__).parents[1] / "catalog" / "gpus.yaml"
GIB = 2**30

Interconnect = Literal["nvlink", "pcie", "infinity-fabric"]
_INTERCONNECTS = ("nvlink", "pcie", "infinity-fabric")


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One accelerator. Compute is dense peak; link bandwidth is per GPU, one direction."""

    id: str
    name: str
    vendor: str
    hbm_gib: float
    mem_bandwidth_gb_per_s: float
    bf16_tflops: float
    fp8_tflops: float | None
    int8_tops: float
    interconnect: Interconnect
    interconnect_gb_per_s: float
    source: str
    memory_source: str = ""
    fp32_tflops: float | None = None  # dense FP32 peak; needed only for weight_dtype fp32
    host_link_gb_per_s: float | None = None  # to host memory; needed only for CPU KV offload
    host_memory_gib: float | None = None  # typical host RAM per GPU of its servers
    # When the datasheet or figure cited in `source` was published or last revised, ISO
    # "YYYY-MM" or "YYYY-MM-DD". Required in the shipped catalog; "" (unknown) in a device file.
    source_date: str = ""
    # e.g. "NVLink 4", "PCIe Gen5 x16", "Infinity Fabric (xGMI)", "none". Required in the shipped
    # catalog; "" (unknown) in a device file.
    interconnect_generation: str = ""

    @property
    def hbm_bytes(self) -> int:
        return round(self.hbm_gib * GIB)

    @property
    def has_fp8(self) -> bool:
        return self.fp8_tflops is not None


def list_gpus() -> list[str]:
    """Ids of the catalog GPUs, sorted."""
    return sorted(_catalog())


def load_gpu(gpu_id: str) -> GpuSpec:
    """The catalog entry for ``gpu_id``, or a device file when it names a ``.yaml`` file.

    A device file holds one entry in the catalog's format (plus an optional ``id``, the file's
    name otherwise): a GPU not in the catalog, or the CPU a calibration ran on. Unlike a catalog
    entry it may leave out ``source_date`` and ``interconnect_generation``. An unknown id
    raises ScenarioError listing the ids.
    """
    path = Path(gpu_id)
    if path.suffix in (".yaml", ".yml"):
        return _device_file(path)
    catalog = _catalog()
    if gpu_id not in catalog:
        raise ScenarioError(
            f"hardware.gpu {gpu_id!r} is not in the GPU catalog; known ids: "
            f"{', '.join(sorted(catalog))}. To add one, add an entry to sim/catalog/gpus.yaml "
            "or give the path of a device file"
        )
    return catalog[gpu_id]


@lru_cache(maxsize=32)
def _device_file(path: Path) -> GpuSpec:
    if not path.is_file():
        raise ScenarioError(f"hardware.gpu: no device file at {path}")
    try:
        entry = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"device file {path}: not valid YAML ({exc})") from None
    if not isinstance(entry, dict):
        raise ScenarioError(f"device file {path}: expected one mapping of datasheet fields")
    entry = dict(entry)
    device_id = str(entry.pop("id", path.stem))
    return _parse_entry(device_id, entry, where=f"device file {path}", catalog=False)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, GpuSpec]:
    raw = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8")) or {}
    return {gpu_id: _parse_entry(gpu_id, entry) for gpu_id, entry in raw.items()}


_NUMBERS = ("hbm_gib", "mem_bandwidth_gb_per_s", "bf16_tflops", "int8_tops",
            "interconnect_gb_per_s")


_OPTIONAL_NUMBERS = ("fp8_tflops", "fp32_tflops", "host_link_gb_per_s", "host_memory_gib")
_OPTIONAL = ("memory_source", "fp32_tflops", "host_link_gb_per_s", "host_memory_gib")
# Required in the shipped catalog, optional in a user's device file (older files lack them).
_PROVENANCE = ("source_date", "interconnect_generation")
_ISO_DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?")


def _parse_entry(gpu_id: str, entry: dict[str, Any], where: str = "",
                 catalog: bool = True) -> GpuSpec:
    """Check one entry; ``catalog=False`` (a device file) makes the _PROVENANCE fields optional."""
    where = where or f"gpus.yaml entry {gpu_id!r}"
    known = {f.name for f in fields(GpuSpec)} - {"id"}
    unknown = set(entry) - known
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(known))}"
        )
    missing = known - set(entry) - set(_OPTIONAL) - (set() if catalog else set(_PROVENANCE))
    if missing:
        raise ScenarioError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    for name in _NUMBERS + _OPTIONAL_NUMBERS:
        value = entry.get(name)
        if value is None and name in _OPTIONAL_NUMBERS:
            continue
        if not isinstance(value, int | float) or value <= 0:
            raise ScenarioError(f"{where}: {name}={value!r} must be a positive number")
    if entry["interconnect"] not in _INTERCONNECTS:
        raise ScenarioError(
            f"{where}: interconnect={entry['interconnect']!r}; "
            f"use one of {', '.join(_INTERCONNECTS)}"
        )
    entry = dict(entry)
    if not catalog:  # a device file may leave its provenance blank
        for name in _PROVENANCE:
            if entry.get(name) is None:
                entry[name] = ""
    if entry.get("source_date", "") != "" or catalog:
        entry["source_date"] = _source_date(gpu_id, entry["source_date"], where)
    generation = entry.get("interconnect_generation", "")
    if not isinstance(generation, str) or (catalog and not generation.strip()):
        raise ScenarioError(
            f"{where}: interconnect_generation={generation!r} for GPU {gpu_id!r} must be a "
            'non-empty text such as "NVLink 4", "PCIe Gen5 x16" or "none"'
        )
    return GpuSpec(id=gpu_id, **entry)


def _source_date(gpu_id: str, value: Any, where: str) -> str:
    """``value`` as an ISO "YYYY-MM" or "YYYY-MM-DD" text; a real, past date."""
    if isinstance(value, dt.date):  # YAML reads an unquoted 2024-03-18 as a date
        value = value.isoformat()
    problem = ""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        problem = 'use an ISO date, "YYYY-MM" or "YYYY-MM-DD"'
    else:
        text = value.strip()
        try:
            day = dt.date.fromisoformat(text if len(text) == 10 else f"{text}-01")
        except ValueError:
            problem = "no such date"
        else:
            if day > dt.date.today():
                problem = "it lies in the future"
    if problem:
        raise ScenarioError(f"{where}: source_date={value!r} for GPU {gpu_id!r}: {problem} "
                            "(when the datasheet or figure cited in `source` was published)")
    return value.strip()
