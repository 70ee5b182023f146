"""The shape of a transformer model, and the sizes and costs that follow from it.

Only shapes are stored; parameter counts, bytes and FLOPs are derived, so they can never
disagree with the shape. A spec is built from a Hugging Face ``config.json`` (Llama, Mistral,
Mixtral, Qwen2, Qwen3, Qwen3-MoE and OPT layouts), the file every model publishes.

Parameters per decoder layer, for the two layouts:

    attention   q, o: hidden x (heads * head_dim)    k, v: hidden x (kv_heads * head_dim)
    dense MLP   gated (SwiGLU): gate, up, down = 3 x hidden x intermediate
                OPT (ReLU):     fc1, fc2       = 2 x hidden x ffn_dim
    MoE MLP     router hidden x experts  +  experts x (3 x hidden x expert_intermediate)
                (+ a shared expert every token passes through: Qwen2-MoE, Llama-4)

Llama-4 names its widths differently: ``intermediate_size`` is the expert (and shared expert)
width, ``intermediate_size_mlp`` the dense layers' width, and every ``interleave_moe_layer_step``-th
layer is MoE (Scout: every layer, Maverick: every second).

Norms and biases are counted too; they are tiny, but counting them keeps totals within a
fraction of a percent of the published parameter counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sim.engine.dtypes import activation_bytes, kv_bytes_per_element, weight_bytes_per_param
from sim.engine.errors import ScenarioError

Bias = Literal["none", "qkv", "all"]

# Embeddings, the LM head, norms, biases and MoE routers stay in the activation dtype (16-bit;
# fp32 for an fp32 model) when the linear layers are quantized (vLLM's fp8 and AWQ/GPTQ
# checkpoints do this): ``sim.engine.dtypes.activation_bytes``.

_OPT_POSITION_OFFSET = 2  # OPT's learned position table has two extra rows


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A decoder-only transformer's shape. ``num_experts == 1`` means a dense model."""

    id: str
    architecture: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    num_experts: int = 1
    experts_per_token: int = 1
    expert_intermediate_size: int = 0
    tie_word_embeddings: bool = False
    num_moe_layers: int = 0
    shared_expert_intermediate_size: int = 0
    mlp_projections: int = 3  # 3 for a gated MLP, 2 for OPT's fc1/fc2
    bias: Bias = "none"  # "qkv": Qwen2's attention input biases; "all": OPT
    learned_position_embeddings: int = 0  # rows of a learned position table (OPT); 0 = RoPE

    def __post_init__(self) -> None:
        _check_shape(self)

    @classmethod
    def from_hf_config(cls, model_id: str, config: dict[str, Any]) -> ModelSpec:
        """Read a Hugging Face ``config.json`` dict; missing or odd fields raise ScenarioError."""
        return _from_hf_config(model_id, config)

    # ---- parameter counts -------------------------------------------------------------

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def embedding_params(self) -> int:
        """The input token table plus any learned position table."""
        return (self.vocab_size + self.learned_position_embeddings) * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """The output projection's own parameters (zero when it reuses the embedding)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def expert_params_per_expert(self) -> int:
        """One routed expert in one MoE layer."""
        return self.mlp_projections * self.hidden_size * self.expert_intermediate_size

    @property
    def expert_params(self) -> int:
        """All routed experts of all MoE layers."""
        return self.num_moe_layers * self.num_experts * self.expert_params_per_expert

    @property
    def total_params(self) -> int:
        """Every parameter held in memory: all experts count."""
        return self._unquantized_params + self._linear_params

    @property
    def active_params(self) -> int:
        """Parameters one token uses: shared weights plus its top-k experts."""
        idle = self.num_experts - self.experts_per_token
        return self.total_params - self.num_moe_layers * idle * self.expert_params_per_expert

    # ---- bytes --------------------------------------------------------------------------

    def weight_bytes(self, weight_dtype: str) -> int:
        """Bytes of all weights (every expert occupies memory, used or not)."""
        linear = self._linear_params * weight_bytes_per_param(weight_dtype)
        return round(linear + self._unquantized_params * activation_bytes(weight_dtype))

    def expected_active_experts(self, num_tokens: int) -> float:
        """Distinct experts one MoE layer is expected to touch for ``num_tokens`` tokens.

        Each token picks k of E experts; an expert is missed by all n tokens with probability
        (1 - k/E)^n, so a decode batch of a few dozen tokens already reads most experts.
        """
        if num_tokens <= 0:
            return 0.0
        e, k = self.num_experts, self.experts_per_token
        return e * (1.0 - (1.0 - k / e) ** num_tokens)

    def expert_bytes_read(self, num_tokens: int, weight_dtype: str) -> float:
        """Bytes of routed-expert weights a forward pass over ``num_tokens`` tokens reads."""
        per_expert = self.expert_params_per_expert * weight_bytes_per_param(weight_dtype)
        return self.num_moe_layers * self.expected_active_experts(num_tokens) * per_expert

    def weight_bytes_read(self, num_tokens: int, weight_dtype: str) -> float:
        """Bytes of weights one forward pass over ``num_tokens`` tokens streams from memory.

        Everything except the input tables (a lookup reads only a few rows) and the experts
        no token was routed to. The LM head is read in full even when tied to the embedding.
        Dense models have no experts, so this is simply the weights minus the input tables.
        """
        all_experts = self.expert_params * weight_bytes_per_param(weight_dtype)
        lookup_tables = self.learned_position_embeddings * self.hidden_size
        if not self.tie_word_embeddings:  # a tied table is read in full, as the LM head
            lookup_tables += self.vocab_size * self.hidden_size
        shared = (self.weight_bytes(weight_dtype) - all_experts
                  - lookup_tables * activation_bytes(weight_dtype))
        return shared + self.expert_bytes_read(num_tokens, weight_dtype)

    def kv_bytes_per_token(self, kv_dtype: str) -> int:
        """Bytes of K and V one token adds to the cache, over all layers and all GPUs."""
        elements = 2 * self.num_layers * self.num_kv_heads * self.head_dim
        return round(elements * kv_bytes_per_element(kv_dtype))

    # ---- FLOPs --------------------------------------------------------------------------

    @property
    def linear_flops_per_token(self) -> int:
        """Multiply-adds x 2 of every matmul one token passes through, LM head included."""
        non_embedding = self.active_params - self.embedding_params - self.lm_head_params
        return 2 * non_embedding + 2 * self.hidden_size * self.vocab_size

    @property
    def attention_flops_per_token_per_context(self) -> int:
        """FLOPs for one query token against one cached token: QK^T and AV, 2 FLOPs each."""
        return 4 * self.num_layers * self.num_attention_heads * self.head_dim

    # ---- helpers ------------------------------------------------------------------------

    @property
    def _linear_params(self) -> int:
        """Decoder-layer matmul weights: the parameters a quantized checkpoint shrinks."""
        q_dim = self.num_attention_heads * self.head_dim
        kv_dim = self.num_kv_heads * self.head_dim
        attention = 2 * self.hidden_size * q_dim + 2 * self.hidden_size * kv_dim
        dense_mlp = self.mlp_projections * self.hidden_size * self.intermediate_size
        shared = self.mlp_projections * self.hidden_size * self.shared_expert_intermediate_size
        num_dense = self.num_layers - self.num_moe_layers
        return (
            self.num_layers * attention
            + num_dense * dense_mlp
            + self.num_moe_layers * shared
            + self.expert_params
        )

    @property
    def _unquantized_params(self) -> int:
        """Embeddings, LM head, norms, biases and routers: kept in 16 bits."""
        h = self.hidden_size
        norm_width = 2 * h if self.bias == "all" else h  # LayerNorm has a bias, RMSNorm not
        per_layer = 2 * norm_width + self._bias_params_per_layer
        routers = self.num_moe_layers * h * self.num_experts if self.is_moe else 0
        return (
            self.embedding_params
            + self.lm_head_params
            + self.num_layers * per_layer
            + routers
            + norm_width
        )

    @property
    def _bias_params_per_layer(self) -> int:
        q_dim = self.num_attention_heads * self.head_dim
        kv_dim = self.num_kv_heads * self.head_dim
        if self.bias == "qkv":
            return q_dim + 2 * kv_dim
        if self.bias == "all":
            mlp = self.intermediate_size + self.hidden_size
            return q_dim + 2 * kv_dim + self.hidden_size + mlp
        return 0


def _check_shape(spec: ModelSpec) -> None:
    """Reject shapes no real model has, naming the field, so a bad config fails early."""
    for name in ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads",
                 "head_dim", "vocab_size", "num_experts", "experts_per_token"):
        value = getattr(spec, name)
        if not isinstance(value, int) or value < 1:
            raise ScenarioError(f"model {spec.id!r}: {name}={value!r} must be a positive integer")
    if spec.num_attention_heads % spec.num_kv_heads:
        raise ScenarioError(
            f"model {spec.id!r}: num_attention_heads={spec.num_attention_heads} is not a "
            f"multiple of num_key_value_heads={spec.num_kv_heads}: check the config"
        )
    if spec.experts_per_token > spec.num_experts:
        raise ScenarioError(
            f"model {spec.id!r}: num_experts_per_tok={spec.experts_per_token} exceeds the "
            f"{spec.num_experts} experts: check the config"
        )
    if spec.is_moe and spec.expert_intermediate_size < 1:
        raise ScenarioError(
            f"model {spec.id!r} has {spec.num_experts} experts but no expert width: "
            "add moe_intermediate_size (or intermediate_size) to the config"
        )


def _from_hf_config(model_id: str, config: dict[str, Any]) -> ModelSpec:
    # Multimodal wrappers keep the language model's shape under text_config.
    if "num_hidden_layers" not in config and isinstance(config.get("text_config"), dict):
        config = config["text_config"]
    if "kv_lora_rank" in config:
        raise ScenarioError(
            f"model {model_id!r} uses multi-head latent attention (kv_lora_rank), whose KV "
            "cache this simulator does not model: pick a model with standard attention"
        )

    def need(*keys: str) -> Any:
        """The first of ``keys`` the config has (they are alternative names of one field)."""
        for key in keys:
            if config.get(key) is not None:
                return config[key]
        raise ScenarioError(
            f"model {model_id!r}: config.json has no {' or '.join(map(repr, keys))}: this "
            "field is required (is this a Hugging Face config.json of a decoder-only model?)"
        )

    model_type = str(config.get("model_type") or (config.get("architectures") or ["?"])[0])
    is_opt = model_type == "opt"
    hidden = need("hidden_size")
    heads = need("num_attention_heads")
    head_dim = config.get("head_dim") or _derived_head_dim(model_id, hidden, heads)
    # OPT names its FFN width ffn_dim; an all-MoE config may give only the expert width.
    intermediate = need("ffn_dim") if is_opt else need("intermediate_size", "moe_intermediate_size")
    num_layers = need("num_hidden_layers")
    num_experts = (
        config.get("num_local_experts") or config.get("num_experts")
        or config.get("n_routed_experts") or 1
    )
    is_llama4 = model_type.startswith("llama4")
    # Llama-4's intermediate_size is the expert width; its dense layers use intermediate_size_mlp
    dense_width = intermediate
    if is_llama4:
        dense_width = config.get("intermediate_size_mlp") or intermediate
    return ModelSpec(
        id=model_id,
        architecture=model_type,
        num_layers=num_layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        intermediate_size=dense_width,
        vocab_size=need("vocab_size"),
        max_position_embeddings=need("max_position_embeddings"),
        num_experts=num_experts,
        experts_per_token=config.get("num_experts_per_tok", 1) if num_experts > 1 else 1,
        expert_intermediate_size=(
            config.get("moe_intermediate_size") or intermediate if num_experts > 1 else 0
        ),
        # Hugging Face's default is tied; the Llama/Mistral/Qwen families override it.
        tie_word_embeddings=bool(config.get("tie_word_embeddings", is_opt)),
        num_moe_layers=_count_moe_layers(config, num_layers) if num_experts > 1 else 0,
        shared_expert_intermediate_size=_shared_expert_width(config, is_llama4, intermediate),
        mlp_projections=2 if is_opt else 3,
        bias=_bias_kind(model_type, config),
        learned_position_embeddings=(
            config["max_position_embeddings"] + _OPT_POSITION_OFFSET if is_opt else 0
        ),
    )


def _derived_head_dim(model_id: str, hidden: int, heads: int) -> int:
    if hidden % heads:
        raise ScenarioError(
            f"model {model_id!r}: hidden_size={hidden} is not divisible by "
            f"num_attention_heads={heads}: add head_dim to the config"
        )
    return hidden // heads


def _count_moe_layers(config: dict[str, Any], num_layers: int) -> int:
    """Qwen-MoE can keep some layers dense (mlp_only_layers) or make every n-th one sparse;
    Llama-4 makes every n-th sparse (interleave_moe_layer_step) or lists them (moe_layers)."""
    listed = config.get("moe_layers")
    if listed is not None:
        return len({i for i in listed if 0 <= i < num_layers})
    dense = set(config.get("mlp_only_layers") or ())
    step = config.get("decoder_sparse_step") or config.get("interleave_moe_layer_step") or 1
    return sum(1 for i in range(num_layers) if i not in dense and (i + 1) % step == 0)


def _shared_expert_width(config: dict[str, Any], is_llama4: bool, intermediate: int) -> int:
    """Qwen2-MoE states its shared expert's width; Llama-4 always has one shared expert as wide
    as a routed one, and its config does not say so."""
    if config.get("shared_expert_intermediate_size"):
        return config["shared_expert_intermediate_size"]
    return intermediate if is_llama4 else 0


def _bias_kind(model_type: str, config: dict[str, Any]) -> Bias:
    if model_type == "opt":
        return "all" if config.get("enable_bias", True) else "none"
    # Qwen2 has q/k/v biases without saying so in its config; Llama says attention_bias.
    if model_type.startswith("qwen2") or config.get("attention_bias"):
        return "qkv"
    return "none"
