"""Model shapes: parameter counts against published figures, derived bytes and FLOPs, loading."""

from __future__ import annotations

import json

import pytest

from sim.config.model_catalog import CATALOG_DIR, list_models, load_model
from sim.engine.errors import ScenarioError
from sim.engine.model_spec import ModelSpec

REQUIRED_IDS = ["llama-2-7b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "codellama-34b",
                "qwen3-14b", "qwen2.5-7b", "mistral-7b", "mixtral-8x7b", "opt-13b"]


@pytest.mark.parametrize(
    ("model_id", "published_billions"),
    [
        ("llama-3.1-8b", 8.03),
        ("llama-2-7b", 6.74),
        ("llama-2-70b", 68.98),
        ("mixtral-8x7b", 46.7),
        ("qwen2.5-7b", 7.61),
        ("opt-13b", 12.9),
        ("qwen3-30b-a3b", 30.5),
        ("mistral-7b", 7.24),
    ],
)
def test_total_params_match_published_counts(model_id: str, published_billions: float) -> None:
    total = load_model(model_id).total_params / 1e9
    assert total == pytest.approx(published_billions, rel=0.02)


def test_exact_parameter_count_of_llama_3_1_8b() -> None:
    # 8,030,261,248 is the sum of the safetensors shapes of Meta-Llama-3.1-8B.
    assert load_model("llama-3.1-8b").total_params == 8_030_261_248


def test_moe_active_params_count_only_the_top_k_experts() -> None:
    mixtral = load_model("mixtral-8x7b")
    assert mixtral.active_params / 1e9 == pytest.approx(12.9, rel=0.02)
    qwen_moe = load_model("qwen3-30b-a3b")
    assert qwen_moe.active_params / 1e9 == pytest.approx(3.3, rel=0.03)


# Llama-4-Scout (text part), by hand: hidden 5120, 48 layers, 40 query / 8 KV heads of 128.
_SCOUT_ATTENTION = 48 * (2 * 5120 * 5120 + 2 * 5120 * 1024)
_SCOUT_EXPERT = 3 * 5120 * 8192  # one expert (routed or shared) of width 8192 in one layer
_SCOUT_UNQUANTIZED = (2 * 202_048 * 5120      # embedding and untied LM head
                      + 48 * 2 * 5120 + 5120  # RMSNorms
                      + 48 * 5120 * 16)       # routers


def test_llama_4_scout_counts_its_shared_expert_and_every_moe_layer() -> None:
    scout = load_model("llama-4-scout-17b-16e-fp8")
    assert (scout.num_layers, scout.num_moe_layers) == (48, 48)  # interleave_moe_layer_step 1
    assert (scout.num_experts, scout.experts_per_token) == (16, 1)
    assert scout.expert_intermediate_size == scout.shared_expert_intermediate_size == 8192
    total = _SCOUT_ATTENTION + 48 * (16 + 1) * _SCOUT_EXPERT + _SCOUT_UNQUANTIZED
    active = _SCOUT_ATTENTION + 48 * (1 + 1) * _SCOUT_EXPERT + _SCOUT_UNQUANTIZED
    assert scout.total_params == total == 107_769_861_120  # ~109 B published, with vision
    assert scout.active_params == active == 17_172_894_720  # the "17B" in its name
    assert scout.kv_bytes_per_token("bf16") == 2 * 48 * 8 * 128 * 2
    assert scout.weight_bytes("fp8") == (total - _SCOUT_UNQUANTIZED) + 2 * _SCOUT_UNQUANTIZED


def test_llama_4_interleaved_moe_layers_use_the_dense_width_in_between() -> None:
    # Maverick's layout: every second layer MoE, dense layers 16384 wide.
    config = {"model_type": "llama4", "text_config": {
        "model_type": "llama4_text", "hidden_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64,
        "intermediate_size": 256, "intermediate_size_mlp": 1024, "vocab_size": 1000,
        "max_position_embeddings": 4096, "num_local_experts": 4, "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 2}}
    spec = ModelSpec.from_hf_config("mini-maverick", config)
    assert (spec.num_moe_layers, spec.intermediate_size) == (2, 1024)
    dense_mlp, expert = 3 * 512 * 1024, 3 * 512 * 256
    idle = spec.total_params - spec.active_params
    assert idle == 2 * 3 * expert  # two MoE layers, three of four experts idle
    mlp = spec.total_params - spec.embedding_params - spec.lm_head_params
    attention = 4 * (2 * 512 * 512 + 2 * 512 * 128)
    norms_routers = 4 * 2 * 512 + 512 + 2 * 512 * 4
    assert mlp == attention + 2 * dense_mlp + 2 * (4 + 1) * expert + norms_routers


def test_dense_models_are_fully_active() -> None:
    model = load_model("llama-2-7b")
    assert model.num_experts == 1 and model.experts_per_token == 1
    assert model.active_params == model.total_params


@pytest.mark.parametrize(
    ("model_id", "kv_bytes"),
    [("llama-3.1-8b", 131_072), ("llama-2-7b", 524_288), ("llama-2-70b", 327_680),
     ("qwen2.5-7b", 57_344), ("opt-13b", 819_200)],
)
def test_kv_bytes_per_token_in_bf16(model_id: str, kv_bytes: int) -> None:
    assert load_model(model_id).kv_bytes_per_token("bf16") == kv_bytes


def test_fp8_kv_cache_halves_the_bytes() -> None:
    assert load_model("llama-3.1-8b").kv_bytes_per_token("fp8") == 65_536


def test_weight_bytes_by_dtype() -> None:
    model = load_model("llama-3.1-8b")
    assert model.weight_bytes("bf16") == 2 * 8_030_261_248
    # fp8 shrinks only the decoder matmuls; embeddings and LM head (1.05 B params) stay 16-bit.
    assert model.weight_bytes("fp8") == pytest.approx(9.08e9, rel=0.005)
    # AWQ int4 checkpoints of Llama-3.1-8B are about 5.7 GB.
    assert model.weight_bytes("awq-int4") == pytest.approx(5.73e9, rel=0.01)


def test_unknown_weight_dtype_names_the_valid_ones() -> None:
    with pytest.raises(ScenarioError, match="weight_dtype 'int3'.*bf16.*awq-int4"):
        load_model("llama-3.1-8b").weight_bytes("int3")


def test_flops_per_token() -> None:
    model = load_model("llama-3.1-8b")
    non_embedding = 8_030_261_248 - 2 * 128_256 * 4096
    assert model.linear_flops_per_token == 2 * non_embedding + 2 * 4096 * 128_256
    assert model.attention_flops_per_token_per_context == 4 * 32 * 32 * 128


def test_moe_linear_flops_use_active_params() -> None:
    mixtral = load_model("mixtral-8x7b")
    assert mixtral.linear_flops_per_token / 1e9 == pytest.approx(25.5, rel=0.01)


def test_expected_active_experts() -> None:
    mixtral = load_model("mixtral-8x7b")  # 8 experts, top 2
    assert mixtral.expected_active_experts(0) == 0
    assert mixtral.expected_active_experts(1) == pytest.approx(2.0)
    assert mixtral.expected_active_experts(2) == pytest.approx(8 * (1 - 0.75**2))
    assert mixtral.expected_active_experts(64) == pytest.approx(8.0, abs=1e-6)
    assert load_model("llama-2-7b").expected_active_experts(100) == 1.0


def test_weight_bytes_read_grows_with_the_batch_for_moe_only() -> None:
    mixtral = load_model("mixtral-8x7b")
    one = mixtral.weight_bytes_read(1, "bf16")
    many = mixtral.weight_bytes_read(256, "bf16")
    # One token reads the shared weights and 2 of 8 experts; a big batch reads all experts.
    assert one / 2**30 == pytest.approx(23.75, abs=0.01)
    assert many == pytest.approx(mixtral.weight_bytes("bf16") - 32_000 * 4096 * 2, rel=1e-9)
    dense = load_model("llama-3.1-8b")
    assert dense.weight_bytes_read(1, "bf16") == dense.weight_bytes_read(512, "bf16")
    # The input embedding table is looked up, not streamed.
    assert dense.weight_bytes_read(1, "bf16") == dense.weight_bytes("bf16") - 128_256 * 4096 * 2


def test_tied_embeddings_are_stored_once_and_read_as_the_lm_head() -> None:
    opt = load_model("opt-13b")
    assert opt.tie_word_embeddings and opt.lm_head_params == 0
    positions = (2048 + 2) * 5120
    assert opt.weight_bytes_read(1, "fp16") == opt.weight_bytes("fp16") - positions * 2


def test_head_dim_is_read_when_given_and_derived_otherwise() -> None:
    nemo = load_model("mistral-nemo")  # 32 heads x 128 = 4096, not hidden_size 5120
    assert nemo.head_dim == 128 and nemo.hidden_size == 5120
    assert load_model("llama-2-7b").head_dim == 4096 // 32


def test_missing_kv_heads_means_multi_head_attention() -> None:
    config = {"hidden_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 16,
              "intermediate_size": 4096, "vocab_size": 1000, "max_position_embeddings": 512,
              "model_type": "llama"}
    spec = ModelSpec.from_hf_config("tiny", config)
    assert spec.num_kv_heads == 16
    assert spec.kv_bytes_per_token("bf16") == 2 * 2 * 16 * 64 * 2


def test_missing_field_names_it() -> None:
    with pytest.raises(ScenarioError, match="'broken'.*'vocab_size'"):
        ModelSpec.from_hf_config("broken", {"hidden_size": 64, "num_hidden_layers": 2,
                                            "num_attention_heads": 4, "intermediate_size": 128,
                                            "max_position_embeddings": 64})


def test_latent_attention_models_are_refused() -> None:
    with pytest.raises(ScenarioError, match="kv_lora_rank"):
        ModelSpec.from_hf_config("mla", {"kv_lora_rank": 512, "hidden_size": 2048})


def test_every_required_model_is_in_the_catalog() -> None:
    assert set(REQUIRED_IDS) <= set(list_models())
    for model_id in REQUIRED_IDS:
        assert load_model(model_id).id == model_id


def test_unknown_model_lists_ids_and_how_to_add_one() -> None:
    with pytest.raises(ScenarioError) as err:
        load_model("gpt-5")
    message = str(err.value)
    assert "'gpt-5'" in message and "llama-3.1-8b" in message
    assert "config.json" in message and "SERVESIM_MODELS_DIR" in message


def test_a_config_path_or_its_directory_loads(tmp_path) -> None:
    config = json.loads((CATALOG_DIR / "llama-2-7b.json").read_text())
    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    assert load_model(str(folder)).id == "my-llama"
    assert load_model(str(folder / "config.json")).total_params == 6_738_415_616


def test_models_dir_and_environment_variable(tmp_path, monkeypatch) -> None:
    config = {"hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 512, "vocab_size": 1000, "max_position_embeddings": 128,
              "model_type": "llama"}
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    assert load_model("tiny", models_dir=tmp_path).hidden_size == 256
    other = tmp_path / "env"
    (other / "tiny2").mkdir(parents=True)
    (other / "tiny2" / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("SERVESIM_MODELS_DIR", str(other))
    assert load_model("tiny2").num_layers == 2


def test_catalog_entries_are_cached() -> None:
    assert load_model("qwen3-14b") is load_model("qwen3-14b")
