"""Build sim/catalog/profiles/calibrated.yaml, the profile `engine.latency_profile: auto` uses.

Run from the repository root:  python scripts/build_calibrated_profile.py

One override per configuration with measurements of a current vLLM, fitted from the shipped
hand-set roofline (`default`) as the start:

* H100 SXM, Llama-2-70B TP 4 and CodeLlama-34B TP 2: vLLM v0.15 engine steps
  (calibrate/data/h100_vllm_steps). The steps are decode and small mixed chunks, which cannot
  tell the efficiencies from the fixed costs, so only the overheads and the all-reduce latency
  are fitted.
* RTX 4090 and RTX PRO 6000 with Llama-3.1-8B, RTX PRO 6000 with Qwen3-32B TP 2: vLLM 0.19
  runs (calibrate/data/llmservingsim_vllm_bench), fitted by replay to their mean TPOT, E2E and
  TTFT (memory efficiency and step overhead).

* The 2-core CPU servesim's tests run vLLM 0.32's CPU backend on (`x86-cpu-2c`), with the
  catalog's `tiny-llama` in fp32: the steps of a full `servesim calibrate run` sweep
  (calibrate/data/vllm_cpu_tiny_llama); prefill, decode and mixed steps, so every coefficient
  is fitted.

Left out on purpose: the Splitwise A100/H100 microbenchmarks. They come from a 2023 engine 1.6-2x
slower than vLLM on the same GPU; an override from them would make A100 predictions mimic that
engine. Configurations without an override keep using `default`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.profile_file import profile_document, write_profile  # noqa: E402
from calibrate.run_fit import fit_to_runs  # noqa: E402
from calibrate.sources import h100_vllm_steps, llmservingsim  # noqa: E402
from calibrate.step_fit import OVERHEADS, fit, physically_possible  # noqa: E402
from calibrate.step_sample import read_samples  # noqa: E402
from sim.engine.gpu import load_gpu
from sim.engine.latency_profile import Coefficients, load_profile

OUT = ROOT / "sim" / "catalog" / "profiles" / "calibrated.yaml"
CPU_STEPS = ROOT / "calibrate" / "data" / "vllm_cpu_tiny_llama" / "steps.parquet"


def main(out: Path = OUT) -> None:
    default = load_profile("default")

    def start(model: str, gpu: str, tp: int, dtype: str) -> Coefficients:
        return default.resolve(gpu=gpu, model=model, tensor_parallel=tp, weight_dtype=dtype,
                               interconnect=load_gpu(gpu).interconnect)

    overrides = []
    steps = physically_possible(h100_vllm_steps.read())
    for config in sorted({s.config for s in steps}):
        own = [s for s in steps if s.config == config]
        fitted = fit(own, start(*config), OVERHEADS)
        overrides.append((config, fitted, f"{len(own)} vLLM v0.15 engine steps"))
        print("steps", config, fitted)
    for run in llmservingsim.read():
        fitted = fit_to_runs([run], start(*run.config.key))
        overrides.append((run.config.key, fitted, f"run {run.name} ({run.config.source})"))
        print("run", run.config.key, fitted)
    cpu = physically_possible(read_samples(CPU_STEPS))
    fitted = fit(cpu, start(*cpu[0].config))
    overrides.append((cpu[0].config, fitted, f"{len(cpu)} steps of {cpu[0].source}"))
    print("steps", cpu[0].config, fitted)
    keys = ("model", "gpu", "tensor_parallel", "weight_dtype")
    source = ("Per-configuration fits to measurements of current vLLM engines; every other "
              "configuration falls back to the default roofline. " + "; ".join(
                  f"{m} on {g} TP{tp} {d}: {what}" for (m, g, tp, d), _, what in overrides))
    document = profile_document("calibrated", source, Coefficients(**default.coefficients),
                                [(dict(zip(keys, config)), c) for config, c, _ in overrides])
    write_profile(out, document, written_by="scripts/build_calibrated_profile.py")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
