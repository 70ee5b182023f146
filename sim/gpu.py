"""GPU datasheet figures, read from ``sim/catalog/gpus.yaml``.

The catalog is data so a user can read where each number came from and add a GPU without
touching code. Every entry is checked when the file is loaded, so a typo fails at once with the
GPU id and the field named, not later inside the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from sim.errors import ScenarioError

CATALOG_FILE = Path(__file__).parent / "catalog" / "gpus.yaml"
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
    name otherwise): a GPU not in the catalog, or the CPU a calibration ran on. An unknown id
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
    return _parse_entry(device_id, entry, where=f"device file {path}")


@lru_cache(maxsize=1)
def _catalog() -> dict[str, GpuSpec]:
    raw = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8")) or {}
    return {gpu_id: _parse_entry(gpu_id, entry) for gpu_id, entry in raw.items()}


_NUMBERS = ("hbm_gib", "mem_bandwidth_gb_per_s", "bf16_tflops", "int8_tops",
            "interconnect_gb_per_s")


_OPTIONAL_NUMBERS = ("fp8_tflops", "fp32_tflops", "host_link_gb_per_s", "host_memory_gib")
_OPTIONAL = ("memory_source", "fp32_tflops", "host_link_gb_per_s", "host_memory_gib")


def _parse_entry(gpu_id: str, entry: dict[str, Any], where: str = "") -> GpuSpec:
    where = where or f"gpus.yaml entry {gpu_id!r}"
    known = {f.name for f in fields(GpuSpec)} - {"id"}
    unknown = set(entry) - known
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(known))}"
        )
    missing = known - set(entry) - set(_OPTIONAL)
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
    return GpuSpec(id=gpu_id, **entry)
