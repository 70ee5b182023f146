"""What a vLLM release does by default, read from ``sim/catalog/vllm_releases.yaml``.

A scenario names ``engine.vllm_version``; every engine setting it leaves out (``None``) takes
that release's default here, for the scenario's device. Behaviours a release lacks (async
scheduling before 0.10) can still be switched on by hand: servesim models the mechanism, the
release only picks the default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.engine.errors import ScenarioError
from sim.engine.gpu import GpuSpec

CATALOG_FILE = Path(__file__).parents[1] / "catalog" / "vllm_releases.yaml"
DEFAULT_VERSION = "0.15.1"  # the release of the real H100 runs docs/validation.md replays
_STRICT = ConfigDict(extra="forbid", frozen=True)
_SMALL_SIZES = (1, 2, 4)


class BatchLimits(BaseModel):
    model_config = _STRICT
    max_num_seqs: int = Field(ge=1)
    max_num_batched_tokens: int = Field(ge=1)


class BatchDefaults(BaseModel):
    model_config = _STRICT
    large_min_hbm_gib: float
    large: BatchLimits
    small: BatchLimits
    cpu: BatchLimits


class Release(BaseModel):
    """One release's defaults (the catalog file's header says what each means)."""

    model_config = _STRICT
    version: str
    source: str
    async_scheduling: bool
    async_skips_length_stop: bool
    admission: Literal["first_chunk", "whole_prompt"]
    cuda_graph_max: int | Literal["twice_max_num_seqs"]
    cuda_graph_step_above_256: Literal[8, 16]
    batch_defaults: BatchDefaults

    def batch_limits(self, gpu: GpuSpec) -> BatchLimits:
        """``vllm serve``'s limits on this device when the scenario gives none."""
        rule = self.batch_defaults
        if not is_gpu(gpu):
            return rule.cpu
        if gpu.hbm_gib >= rule.large_min_hbm_gib and "a100" not in gpu.id.lower():
            return rule.large
        return rule.small

    def cuda_graph_sizes(self, max_num_seqs: int, max_num_batched_tokens: int) -> tuple[int, ...]:
        """The batch sizes (tokens) captured as CUDA graphs, ascending."""
        top = (min(2 * max_num_seqs, 512) if self.cuda_graph_max == "twice_max_num_seqs"
               else self.cuda_graph_max)
        top = min(top, max_num_batched_tokens)
        step = self.cuda_graph_step_above_256
        sizes = [*_SMALL_SIZES, *range(8, min(top + 1, 256), 8), *range(256, top + 1, step)]
        return tuple(s for s in sizes if s <= top)


def is_gpu(device: GpuSpec) -> bool:
    """CPU devices (vLLM's CPU backend) have no CUDA graphs or async scheduling."""
    return device.vendor not in ("x86", "arm", "cpu")


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.15.1"`` (a leading ``v`` allowed) as a comparable tuple."""
    parts = text.strip().lstrip("vV").split(".")
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if not 1 <= len(numbers) <= 3:
        raise ScenarioError(
            f"engine.vllm_version {text!r} is not a release number: write it as e.g. "
            f"{DEFAULT_VERSION!r}"
        )
    return numbers + (0,) * (3 - len(numbers))


def release_for(version: str) -> Release:
    """The newest catalog entry at or below ``version``."""
    wanted = parse_version(version)
    known = [r for r in _releases() if parse_version(r.version) <= wanted]
    if not known:
        oldest = _releases()[0].version
        raise ScenarioError(
            f"engine.vllm_version {version!r} is older than the oldest release servesim models "
            f"({oldest}, vLLM's V1 engine): use {oldest} or newer"
        )
    return known[-1]


@lru_cache(maxsize=1)
def _releases() -> tuple[Release, ...]:
    data = yaml.safe_load(CATALOG_FILE.read_text())
    try:
        releases = tuple(Release.model_validate(item) for item in data["releases"])
    except (ValidationError, KeyError, TypeError) as exc:
        raise ScenarioError(f"{CATALOG_FILE.name} is not valid: {exc}") from None
    return tuple(sorted(releases, key=lambda r: parse_version(r.version)))
