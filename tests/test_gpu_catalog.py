"""The GPU catalog: every required GPU loads with sane dense figures; mistakes are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sim.config.vllm_release import is_gpu
from sim.engine.errors import ScenarioError
from sim.engine.gpu import CATALOG_FILE, GIB, _parse_entry, list_gpus, load_gpu

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


@pytest.mark.parametrize("gpu_id", list_gpus())
def test_every_entry_cites_a_dated_source_and_its_links(gpu_id: str) -> None:
    gpu = load_gpu(gpu_id)
    assert gpu.source.strip()
    assert re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])(-\d{2})?", gpu.source_date), gpu.source_date
    assert "2015" < gpu.source_date
    assert gpu.interconnect_generation.strip()
    if is_gpu(gpu):
        assert gpu.host_link_gb_per_s is not None and gpu.host_link_gb_per_s > 0
        # the generation agrees with the interconnect kind
        prefix = {"nvlink": "NVLink", "pcie": "PCIe", "infinity-fabric": "Infinity Fabric"}
        assert gpu.interconnect_generation.startswith(prefix[gpu.interconnect])
    else:
        assert gpu.interconnect_generation == "none"


def test_host_links_follow_the_pcie_generation() -> None:
    expected = {"a100-40gb": 32, "a100-80gb": 32, "h100-sxm": 64, "h200": 64, "b200": 64,
                "l4": 32, "l40s": 32, "a10g": 32, "a10": 32, "t4": 16, "mi300x": 64,
                "rtx-4090": 32, "rtx-pro-6000": 64}
    assert {g: load_gpu(g).host_link_gb_per_s for g in expected} == expected


def test_the_catalog_requires_a_date_and_a_generation() -> None:
    raw = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    for name in ("source_date", "interconnect_generation"):
        entry = {k: v for k, v in raw["l4"].items() if k != name}
        with pytest.raises(ScenarioError, match=rf"'l4'.*missing field\(s\) {name}"):
            _parse_entry("l4", entry)
    for blank in ("", " ", None):
        with pytest.raises(ScenarioError, match=r"interconnect_generation=.* for GPU 'l4'"):
            _parse_entry("l4", {**raw["l4"], "interconnect_generation": blank})


@pytest.mark.parametrize("bad", ["2023", "03-2023", "2023-13", "2023-02-30", "2023/03",
                                 "March 2023", 2023, "2999-01"])
def test_a_bad_source_date_names_the_gpu_and_the_value(bad: object) -> None:
    raw = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    with pytest.raises(ScenarioError, match=r"source_date=.*for GPU 'my-gpu'") as info:
        _parse_entry("my-gpu", {**raw["h100-sxm"], "source_date": bad})
    assert repr(bad) in str(info.value)


DEVICE = {
    "name": "test accelerator", "vendor": "nvidia", "hbm_gib": 40.0,
    "mem_bandwidth_gb_per_s": 1000, "bf16_tflops": 100, "fp8_tflops": None, "int8_tops": 200,
    "interconnect": "pcie", "interconnect_gb_per_s": 32, "source": "test",
}


def test_a_device_file_may_leave_out_date_and_generation(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(DEVICE))
    device = load_gpu(str(path))
    assert device.source_date == "" and device.interconnect_generation == ""
    dated = tmp_path / "dated.yaml"
    # an unquoted date, which YAML reads as a date, is taken as its ISO text
    dated.write_text(yaml.safe_dump(DEVICE) + "source_date: 2024-03-18\n"
                     "interconnect_generation: PCIe Gen5 x16\n")
    device = load_gpu(str(dated))
    assert (device.source_date, device.interconnect_generation) == ("2024-03-18", "PCIe Gen5 x16")


def test_a_bad_source_date_in_a_device_file_names_the_device(tmp_path: Path) -> None:
    path = tmp_path / "bad-date.yaml"
    path.write_text(yaml.safe_dump({**DEVICE, "id": "lab-gpu", "source_date": "24-03"}))
    message = r"bad-date\.yaml.*source_date='24-03' for GPU 'lab-gpu'"
    with pytest.raises(ScenarioError, match=message):
        load_gpu(str(path))
