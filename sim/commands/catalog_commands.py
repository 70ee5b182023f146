"""`servesim models`, `gpus` and `prices`: list the catalogs a scenario draws on."""

from __future__ import annotations

import argparse
import json


def add_command(commands: argparse._SubParsersAction, name: str, helptext: str) -> None:
    sub = commands.add_parser(name, help=helptext)
    sub.add_argument("--format", choices=["table", "json"], default="table")
    sub.set_defaults(handler=_catalog_handler(name))


def _catalog_handler(name: str):
    def handler(args: argparse.Namespace) -> int:
        rows = _catalog_rows(name)
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        else:
            columns = list(rows[0]) if rows else []
            widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
            print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
            for row in rows:
                print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
        return 0

    return handler


def _catalog_rows(name: str) -> list[dict]:
    if name == "models":
        from sim.config.model_catalog import list_models, load_model

        rows = []
        for model_id in list_models():
            m = load_model(model_id)
            rows.append({
                "id": m.id,
                "params_b": round(m.total_params / 1e9, 2),
                "active_params_b": round(m.active_params / 1e9, 2),
                "layers": m.num_layers,
                "kv_heads": m.num_kv_heads,
                "kv_kib_per_token_bf16": m.kv_bytes_per_token("bf16") // 1024,
                "max_context": m.max_position_embeddings,
            })
        return rows
    if name == "gpus":
        from sim.engine.gpu import list_gpus, load_gpu

        return [
            {
                "id": g.id, "hbm_gib": round(g.hbm_gib, 2), "bandwidth_gb_s": g.mem_bandwidth_gb_per_s,
                "bf16_tflops": g.bf16_tflops, "fp8_tflops": g.fp8_tflops or "-",
                "interconnect": g.interconnect,
                "interconnect_generation": g.interconnect_generation or "-",
                "source_date": g.source_date or "-",
            }
            for g in map(load_gpu, list_gpus())
        ]
    from sim.config.price import list_prices

    return [
        {"gpu": p.gpu_id, "tier": p.tier, "usd_per_gpu_hour": round(p.usd_per_gpu_hour, 4),
         "providers": p.providers, "as_of": p.as_of, "source": p.source}
        for p in list_prices()
    ]
