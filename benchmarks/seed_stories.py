"""The three money moves, reproduced: 4-bit decode speed-ups against TinyChat's published
figures, a chat workload moved from FP16 A100s to AWQ L4s, and routing short-output requests
to a small model. Prints the markdown tables of docs/validation.md ("Seed stories").

    python benchmarks/seed_stories.py [awq|a100-to-l4|routing]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.config.deployment import resolve
from sim.config.scenario import Scenario, parse_scenario
from sim.engine.batch import Batch
from sim.planning.executor import make_executor
from sim.planning.plan import CandidatePlan, candidates, plan
from sim.runner.run import run_scenario

# TinyChat (the AWQ authors' engine), Llama-3-8B, 4-bit AWQ vs FP16 decode, batch 1
PUBLISHED_AWQ_SPEEDUP = {"a100-80gb": 1.96, "rtx-4090": 2.69}
AWQ_SOURCE = ("AWQ / TinyChat README (mit-han-lab/llm-awq): Llama-3-8B decode speed-up of "
              "4-bit AWQ over FP16 at batch 1")
BATCHES = (1, 4, 16, 32, 64, 128, 256)
CONTEXT = 512  # tokens of context per sequence while decoding (a short chat turn)
SEEDS = [0, 1, 2]


def _gcp_prices() -> dict[str, float]:
    """On-demand $/GPU-hour of the one-GPU GCP instances, median over regions."""
    import csv

    wanted = {"a2-ultragpu-1g": "a100-80gb", "g2-standard-4": "l4"}
    path = ROOT / "sim" / "catalog" / "prices_raw" / "gpu_prices.csv"
    with path.open(newline="") as f:
        return {wanted[r["instance_type"]]: float(r["on_demand_usd_per_gpu_hour_median"])
                for r in csv.DictReader(f)
                if r["provider"] == "gcp" and r["instance_type"] in wanted}


GCP_PRICES = _gcp_prices()

CHAT_LENGTHS = {"input": {"dist": "empirical", "dataset": "sharegpt", "max": 4096},
                "output": {"dist": "empirical", "dataset": "sharegpt", "max": 1024}}


def _deployment(gpu: str, weights: str):
    return resolve(parse_scenario({
        "model": "llama-3.1-8b", "hardware": {"gpu": gpu, "price_usd_per_hour": 1.0},
        "engine": {"weight_dtype": weights},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": 1}, "num_requests": 1,
                     "lengths": {"input": 10, "output": 10}},
    }))


def awq_speedup() -> str:
    """Predicted AWQ/FP16 decode speed-up per batch size on the two GPUs TinyChat reports."""
    head = "| GPU | published, batch 1 | " + " | ".join(f"batch {b}" for b in BATCHES) + " |"
    lines = [head, "|" + "---|" * (len(BATCHES) + 2)]
    for gpu, published in PUBLISHED_AWQ_SPEEDUP.items():
        fp16, awq = _deployment(gpu, "fp16"), _deployment(gpu, "awq-int4")
        gains = []
        for b in BATCHES:
            batch = Batch(decode_seqs=b, decode_context_tokens=b * CONTEXT)
            gains.append(fp16.setup.latency.step_time(batch) / awq.setup.latency.step_time(batch))
        error = 100 * (gains[0] - published) / published
        cells = [f"**{gains[0]:.2f}x** ({error:+.0f} %)"] + [f"{g:.2f}x" for g in gains[1:]]
        profile = fp16.profile.name
        lines.append(f"| {gpu} ({profile}) | {published:.2f}x | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Llama-3.1-8B (the catalog's Llama-3 8B shape), decode steps with {CONTEXT} "
                 f"tokens of context per sequence. Published: {AWQ_SOURCE}.")
    return "\n".join(lines)


def _chat(rate: float, slo: dict, name: str) -> Scenario:
    return parse_scenario({
        "name": name, "seed": SEEDS[0], "model": "llama-3.1-8b",
        "hardware": {"gpu": "a100-80gb"},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": rate}, "duration_s": 300,
                     "lengths": CHAT_LENGTHS},
        "slo": slo,
    })


def a100_to_l4() -> str:
    """The fewest FP16 A100-80GB and AWQ L4 replicas holding the same chat SLO."""
    executor = make_executor("local")
    slo = {"ttft_p95_ms": 1500, "tpot_p95_ms": 100}
    lines = ["| load | fleet | replicas | $/hour | monthly bill | output tokens per $ | "
             "p95 TTFT / TPOT (ms) | seeds held | quality kept |", "|---|---|---|---|---|---|---|---|---|"]
    for rate in (2.0, 8.0):
        scenario = _chat(rate, slo, f"chat-{rate:g}rps")
        space = candidates(["a100-80gb"], ["fp16"], [1]) + candidates(["l4"], ["awq-int4"], [1])
        a100, l4 = _by_gpu(plan(scenario, space, SEEDS, executor))
        for p in (a100, l4):
            lines.append(_plan_row(f"{rate:g} req/s", p))
        lines.append(f"| {rate:g} req/s | **L4 AWQ vs A100 FP16** | | "
                     f"| **{100 * (l4.monthly_usd / a100.monthly_usd - 1):+.0f} %** | "
                     f"**{l4.output_tokens_per_usd / a100.output_tokens_per_usd:.2f}x** | | | |")
        # the same fleets at one hyperscaler's list prices, where A100s cost far more
        usd = {gpu: GCP_PRICES[gpu] * p.replicas for gpu, p in (("a100-80gb", a100), ("l4", l4))}
        tokens_per_hour = {"a100-80gb": a100.output_tokens_per_usd * a100.usd_per_hour,
                           "l4": l4.output_tokens_per_usd * l4.usd_per_hour}
        gain = ((tokens_per_hour["l4"] / usd["l4"])
                / (tokens_per_hour["a100-80gb"] / usd["a100-80gb"]))
        lines.append(f"| {rate:g} req/s | same fleets at GCP prices | | "
                     f"{usd['a100-80gb']:.2f} -> {usd['l4']:.2f} "
                     f"| **{100 * (usd['l4'] / usd['a100-80gb'] - 1):+.0f} %** | "
                     f"**{gain:.2f}x** | | | |")
    lines.append("")
    lines.append(f"ShareGPT lengths, Poisson arrivals, 300 s per run, seeds {SEEDS}; SLO p95 TTFT "
                 f"<= {slo['ttft_p95_ms']} ms and p95 TPOT <= {slo['tpot_p95_ms']} ms; on-demand "
                 "catalog prices (sim/catalog/prices.csv, 2026-11: the median across providers, "
                 "GPU clouds included); GCP prices: median over regions of a2-ultragpu-1g "
                 f"(${GCP_PRICES['a100-80gb']:.2f}/GPU-h) and g2-standard-4 "
                 f"(${GCP_PRICES['l4']:.2f}/GPU-h), sim/catalog/prices_raw/gpu_prices.csv.")
    return "\n".join(lines)


def _by_gpu(plans: list[CandidatePlan]) -> tuple[CandidatePlan, CandidatePlan]:
    found = {p.candidate.gpu: p for p in plans}
    for p in found.values():
        if p.status != "ok":
            raise SystemExit(f"{p.candidate}: {p.status}: {p.message}")
    return found["a100-80gb"], found["l4"]


def _plan_row(load: str, p: CandidatePlan) -> str:
    c = p.candidate
    return (f"| {load} | {c.gpu} {c.weight_dtype} | {p.replicas} | {p.usd_per_hour:.2f} | "
            f"${p.monthly_usd:,.0f} | {p.output_tokens_per_usd:,.0f} | "
            f"{p.ttft_p95_ms:,.0f} / {p.tpot_p95_ms:,.0f} | {p.seeds_held}/{p.seeds} | "
            f"{p.quality_retention_percent:.1f} % |")


CLASSIFY = {"name": "classify", "share": 0.6,
            "lengths": {"input": {"dist": "lognormal", "mean": 500, "sigma": 0.6, "max": 4096},
                        "output": {"dist": "uniform", "min": 1, "max": 8}}}
CHAT = {"name": "chat", "share": 0.4, "lengths": CHAT_LENGTHS}
RATE = 40.0
ROUTING_SLO = {"ttft_p95_ms": 1000, "tpot_p95_ms": 80}


def _mix(classes: list[dict], rate: float, model: str, gpu: str, tp: int, name: str) -> Scenario:
    return parse_scenario({
        "name": name, "seed": SEEDS[0], "model": model,
        "hardware": {"gpu": gpu, "tensor_parallel": tp},
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": rate}, "duration_s": 300,
                     "classes": classes},
        "slo": ROUTING_SLO,
    })


def routing() -> str:
    """Everything on a 70B pool, against classification on an 8B pool and chat on the 70B.

    Each pool is sized by the planner on the traffic it receives (a class's share of a
    Poisson stream is itself Poisson at that share of the rate); the routed fleet is then run
    whole to check that it holds the SLO.
    """
    executor = make_executor("local")
    total = sum(c["share"] for c in (CLASSIFY, CHAT))
    before = _size(_mix([CLASSIFY, CHAT], RATE, "llama-3.1-70b", "h100-sxm", 4, "all-on-70b"),
                   "h100-sxm", "bf16", 4, executor)
    small = _size(_mix([{**CLASSIFY, "share": 1.0}], RATE * CLASSIFY["share"] / total,
                       "llama-3.1-8b", "h100-sxm", 1, "classify-on-8b"),
                  "h100-sxm", "bf16", 1, executor)
    large = _size(_mix([{**CHAT, "share": 1.0}], RATE * CHAT["share"] / total,
                       "llama-3.1-70b", "h100-sxm", 4, "chat-on-70b"),
                  "h100-sxm", "bf16", 4, executor)
    fleet = _routed_fleet(small.replicas, large.replicas)
    held = [run_scenario(fleet.with_seed(s)).summary for s in SEEDS]
    after_monthly = small.monthly_usd + large.monthly_usd
    lines = [
        "| fleet | pool | serves | replicas x GPU | $/1M output tokens | monthly bill |",
        "|---|---|---|---|---|---|",
        f"| before | llama-3.1-70b (TP 4) | all | {before.replicas} x h100-sxm | "
        f"{before.usd_per_million_output_tokens:.2f} | ${before.monthly_usd:,.0f} |",
        f"| after | llama-3.1-8b | classify (60 %) | {small.replicas} x h100-sxm | "
        f"{small.usd_per_million_output_tokens:.2f} | ${small.monthly_usd:,.0f} |",
        f"| after | llama-3.1-70b (TP 4) | chat (40 %) | {large.replicas} x h100-sxm | "
        f"{large.usd_per_million_output_tokens:.2f} | ${large.monthly_usd:,.0f} |",
        f"| **after, whole fleet** | | | | | **${after_monthly:,.0f} "
        f"({100 * (after_monthly / before.monthly_usd - 1):+.0f} %)** |",
        "",
        f"{RATE:g} req/s, Poisson, 300 s per run, seeds {SEEDS}; classify: ~500-token prompts, "
        "1-8 output tokens; chat: ShareGPT lengths. Every pool sized to the fewest replicas "
        f"holding p95 TTFT <= {ROUTING_SLO['ttft_p95_ms']} ms and p95 TPOT <= "
        f"{ROUTING_SLO['tpot_p95_ms']} ms in every seed. The routed fleet run whole: p95 TTFT "
        + ", ".join(f"{s['ttft_ms']['p95']:,.0f}" for s in held) + " ms, p95 TPOT "
        + ", ".join(f"{s['tpot_ms']['p95']:,.0f}" for s in held) + " ms (one per seed).",
    ]
    return "\n".join(lines)


def _size(scenario: Scenario, gpu: str, weights: str, tp: int, executor) -> CandidatePlan:
    [result] = plan(scenario, candidates([gpu], [weights], [tp]), SEEDS, executor)
    if result.status != "ok":
        raise SystemExit(f"{scenario.name}: {result.status}: {result.message}")
    return result


def _routed_fleet(small: int, large: int) -> Scenario:
    return parse_scenario({
        "name": "routed", "seed": SEEDS[0],
        "fleet": {
            "pools": [
                {"name": "small", "model": "llama-3.1-8b",
                 "hardware": {"gpu": "h100-sxm", "replicas": small}},
                {"name": "large", "model": "llama-3.1-70b",
                 "hardware": {"gpu": "h100-sxm", "tensor_parallel": 4, "replicas": large}},
            ],
            "routes": [{"to": "small", "endpoints": ["classify"]}, {"to": "large"}],
        },
        "workload": {"arrivals": {"process": "poisson", "rate_per_s": RATE}, "duration_s": 300,
                     "classes": [CLASSIFY, CHAT]},
        "slo": ROUTING_SLO,
    })


STORIES = {"awq": awq_speedup, "a100-to-l4": a100_to_l4, "routing": routing}

if __name__ == "__main__":
    names = sys.argv[1:] or list(STORIES)
    for name in names:
        print(STORIES[name]())
