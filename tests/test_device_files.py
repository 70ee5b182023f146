"""Devices outside the catalog (device files) and fp32 models, as a CPU calibration needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.config.memory_plan import kv_bytes_per_token_per_gpu
from sim.config.model_catalog import load_model
from sim.config.scenario import load_scenario
from sim.engine.errors import ScenarioError
from sim.engine.gpu import load_gpu
from sim.engine.latency_model import peak_flops
from sim.runner.run import run_scenario

CPU = {
    "name": "2-core x86 CPU (AVX2)", "vendor": "amd", "hbm_gib": 8.0,
    "mem_bandwidth_gb_per_s": 12.0, "bf16_tflops": 0.03, "fp32_tflops": 0.064,
    "fp8_tflops": None, "int8_tops": 0.1, "interconnect": "pcie",
    "interconnect_gb_per_s": 10.0, "source": "test device",
}
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
    "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 32000, "max_position_embeddings": 2048,
    "torch_dtype": "float32", "tie_word_embeddings": False, "rms_norm_eps": 1e-5,
}


def write_device(folder: Path, **changes) -> Path:
    path = folder / "cpu.yaml"
    path.write_text(yaml.safe_dump({**CPU, **changes}))
    return path


def test_a_device_file_loads_like_a_catalog_entry(tmp_path: Path) -> None:
    device = load_gpu(str(write_device(tmp_path, id="ci-cpu")))
    assert device.id == "ci-cpu" and device.fp32_tflops == 0.064
    assert peak_flops(device, "fp32") == pytest.approx(0.064e12)
    assert load_gpu(str(write_device(tmp_path / ".." / tmp_path.name))).mem_bandwidth_gb_per_s == 12


@pytest.mark.parametrize("change, message", [
    ({"mem_bandwidth_gb_per_s": -1}, "mem_bandwidth_gb_per_s=-1 must be a positive number"),
    ({"warp_size": 32}, "unknown field(s) warp_size"),
    ({"source": None, "name": None}, "must be"),
])
def test_a_bad_device_file_names_the_field(tmp_path: Path, change: dict, message: str) -> None:
    data = {**CPU, **change}
    data = {k: v for k, v in data.items() if v is not None or k == "fp8_tflops"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError, match=r"device file .*bad\.yaml") as info:
        load_gpu(str(path))
    assert message.split("(")[0] in str(info.value) or "missing field" in str(info.value)
    with pytest.raises(ScenarioError, match="no device file"):
        load_gpu(str(tmp_path / "absent.yaml"))


def test_fp32_needs_the_devices_fp32_figure() -> None:
    with pytest.raises(ScenarioError, match="fp32_tflops"):
        peak_flops(load_gpu("h100-sxm"), "fp32")


def test_an_fp32_model_on_a_cpu_device_runs_from_a_scenario(tmp_path: Path) -> None:
    """A tiny fp32 Llama on a CPU device file, both given by paths relative to the scenario."""
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(TINY_LLAMA))
    write_device(tmp_path, bf16_tflops=10.0, fp32_tflops=10.0)  # decode: bandwidth-bound
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({
        "model": "tiny/config.json",
        "hardware": {"gpu": "cpu.yaml", "price_usd_per_hour": 0.05},
        "engine": {"weight_dtype": "fp32", "block_size": 128, "num_gpu_blocks": 2048,
                   "max_num_batched_tokens": 2048, "max_model_len": 2048},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 2}, "num_requests": 50,
                     "lengths": {"input": 200, "output": 20}},
    }))
    fp32 = run_scenario(load_scenario(scenario)).summary
    assert fp32["gpu"] == "cpu" and fp32["requests"]["completed"] == 50
    model = load_model(str(tmp_path / "tiny" / "config.json"))
    # auto KV dtype follows the fp32 activations: 4 bytes x 2 (K, V) x 4 layers x 2 heads x 64
    assert kv_bytes_per_token_per_gpu(model, 1, "fp32") == 4 * 2 * 4 * 2 * 64
    bf16 = run_scenario(load_scenario(scenario, ["engine.weight_dtype=bf16"])).summary
    # decode steps are weight-bound here: fp32 reads 2 more bytes per weight, at 80 % of
    # 12 GB/s, on top of what bf16 takes
    extra_ms = model.weight_bytes_read(1, "bf16") / (12e9 * 0.8) * 1e3
    assert fp32["itl_ms"]["p50"] - bf16["itl_ms"]["p50"] == pytest.approx(extra_ms, rel=0.15)
