"""Bytes per element of the weight and KV-cache data types a scenario may name.

Weights and the KV cache are the two things that fill GPU memory and that every decode step
reads, so their element sizes set both capacity and step time.

Group-quantized int4 formats (AWQ, GPTQ) store, besides the packed 4-bit weights, one fp16
scale and one packed 4-bit zero point per group of 128 weights along the input dimension:

    0.5 + (2 + 0.5) / 128 = 0.51953125 bytes per weight
"""

from __future__ import annotations

from sim.engine.errors import ScenarioError

INT4_GROUP_SIZE = 128
_INT4_GROUP_OVERHEAD = (2.0 + 0.5) / INT4_GROUP_SIZE  # fp16 scale + 4-bit zero per group

_WEIGHT_BYTES: dict[str, float] = {
    "fp32": 4.0,  # CPU engines without fast 16-bit arithmetic run in fp32
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "awq-int4": 0.5 + _INT4_GROUP_OVERHEAD,
    "gptq-int4": 0.5 + _INT4_GROUP_OVERHEAD,
}

# "auto" stores the cache in the activation dtype: 16-bit, or 32-bit when the weights are fp32
# (``resolve_kv_dtype`` turns it into one of the others).
_KV_BYTES: dict[str, float] = {
    "auto": 2.0,
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
}

WEIGHT_DTYPES: tuple[str, ...] = tuple(_WEIGHT_BYTES)
KV_CACHE_DTYPES: tuple[str, ...] = tuple(_KV_BYTES)


def activation_bytes(weight_dtype: str) -> int:
    """Bytes of one activation element: 4 for an fp32 model, 2 (bf16/fp16) for every other
    format (quantized formats keep 16-bit activations)."""
    return 4 if weight_dtype == "fp32" else 2


def resolve_kv_dtype(kv_dtype: str, weight_dtype: str) -> str:
    """``auto`` means the activation dtype, as in vLLM: fp32 for an fp32 model, else 16-bit."""
    if kv_dtype == "auto" and weight_dtype == "fp32":
        return "fp32"
    return kv_dtype


def weight_bytes_per_param(dtype: str) -> float:
    """Bytes one quantized linear-layer weight occupies, scale overhead included."""
    try:
        return _WEIGHT_BYTES[dtype]
    except KeyError:
        raise ScenarioError(
            f"weight_dtype {dtype!r} is not known: use one of {', '.join(WEIGHT_DTYPES)}"
        ) from None


def kv_bytes_per_element(kv_dtype: str) -> float:
    """Bytes one cached key or value element occupies."""
    try:
        return _KV_BYTES[kv_dtype]
    except KeyError:
        raise ScenarioError(
            f"kv_cache_dtype {kv_dtype!r} is not known: use one of {', '.join(KV_CACHE_DTYPES)}"
        ) from None
