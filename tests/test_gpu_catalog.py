"""The GPU catalog: every required GPU loads with sane dense figures; mistakes are named."""

from __future__ import annotations

import pytest

from sim.errors import ScenarioError
from sim.gpu import GIB, list_gpus, load_gpu

REQUIRED_IDS = ["a100-40gb", "a100-80gb", "h100-sxm", "h200", "l4", "l40s", "a10g", "t4",
                "b200", "mi300x", "rtx-4090", "rtx-pro-6000"]
NO_FP8 = {"a100-40gb", "a100-80gb", "a10g", "a10", "t4"}


def test_every_required_gpu_is_listed() -> None:
    assert set(REQUIRED_IDS) <= set(list_gpus())


@pytest.mark.parametrize("gpu_id", REQUIRED_IDS)
def test_figures_are_dense_and_sane(gpu_id: str) -> None:
    gpu = load_gpu(gpu_id)
    assert gpu.id == gpu_id and gpu.source and gpu.name
    assert 10 < gpu.hbm_gib < 200
    assert 200 <= gpu.mem_bandwidth_gb_per_s <= 8000
    assert 60 <= gpu.bf16_tflops <= 2500
    assert gpu.int8_tops >= gpu.bf16_tflops
    assert gpu.interconnect in ("nvlink", "pcie", "infinity-fabric")
    if gpu_id in NO_FP8:
        assert gpu.fp8_tflops is None and not gpu.has_fp8
    else:
        assert gpu.fp8_tflops is not None and gpu.fp8_tflops >= gpu.bf16_tflops


def test_h100_uses_dense_not_sparse_figures() -> None:
    h100 = load_gpu("h100-sxm")
    assert (h100.bf16_tflops, h100.fp8_tflops) == (989, 1979)
    assert h100.mem_bandwidth_gb_per_s == 3350
    assert h100.interconnect_gb_per_s == 450  # one direction of 900 GB/s NVLink
    # What CUDA reports, a little under the 80 GB on the box.
    assert 79.0 < h100.hbm_gib < 79.7


def test_rtx_4090_memory_is_the_exact_device_total() -> None:
    assert load_gpu("rtx-4090").hbm_bytes == 25_250_627_584


def test_device_totals_sit_below_the_marketed_size() -> None:
    marketed_gb = {"a100-40gb": 40, "a100-80gb": 80, "h100-sxm": 80, "h200": 141, "l4": 24,
                   "l40s": 48, "t4": 16, "b200": 180, "mi300x": 192, "rtx-pro-6000": 96}
    for gpu_id, gb in marketed_gb.items():
        reported = load_gpu(gpu_id).hbm_bytes
        assert 0.9 * gb * 1e9 < reported < gb * 1e9 * 1.08, gpu_id


def test_h200_differs_from_h100_only_in_memory() -> None:
    h100, h200 = load_gpu("h100-sxm"), load_gpu("h200")
    assert h200.bf16_tflops == h100.bf16_tflops and h200.fp8_tflops == h100.fp8_tflops
    assert h200.mem_bandwidth_gb_per_s == 4800 and h200.hbm_gib > 139


def test_unknown_gpu_names_it_and_lists_the_ids() -> None:
    with pytest.raises(ScenarioError, match=r"'h800'.*a100-40gb.*h100-sxm.*gpus\.yaml"):
        load_gpu("h800")


def test_gib_constant() -> None:
    assert GIB == 1024**3
