"""Memory a verl PTST stage needs, estimated before launch from the model's size and the stage's shape, so a
schedule that cannot fit fails here in a sentence rather than as an out-of-memory error at step 1 (or a host
killed by its dataloader at step 300).

GPU, per device, in the two phases verl alternates (vLLM frees its cache while the actor trains):
- training (FSDP over every GPU): fp32 weights, fp32 gradients and Adam's two moments (16 bytes per parameter) for
  full fine-tuning, bf16 base weights only with LoRA; the bf16 reference policy (full fine-tuning only: with LoRA
  verl uses the base without the adapter); activations of one micro-batch with gradient checkpointing (each
  layer's input kept, one layer recomputed) and the fp32 logits and their gradient over the vocabulary;
- rollout: vLLM takes `gpu_memory_utilization` of the device; the KV cache that all of a step's responses would
  need at once is printed beside it (more than vLLM's share means the rollout runs in waves, not that it fails).
Host, per node: the parquet is read by the driver and each dataloader worker.

These are estimates (within tens of percent for dense Qwen-VL models): the point is the order of magnitude, and
which stage crosses the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.progress import LOG
from rl.ptst.config import PTSTConfig, Stage

GIB = 1024**3
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
DATALOADER_WORKERS = 8  # verl's data.dataloader_num_workers default


@dataclass
class Shape:
    parameters: int
    layers: int
    hidden: int
    kv_width: int  # key/value heads x head size
    vocab: int


def model_shape(folder: Path) -> Shape:
    """Sizes read from a model folder's config and weight files (the index's total size where the weights are not
    here, as for a hub id whose processor files alone were fetched)."""
    config = json.loads((folder / "config.json").read_text())
    text = config.get("text_config") or config.get("llm_config") or config
    width = DTYPE_BYTES.get(str(config.get("dtype") or config.get("torch_dtype") or "bfloat16"), 2)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        total_bytes = json.loads(index.read_text()).get("metadata", {}).get("total_size", 0)
    else:
        total_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    hidden, layers = int(text["hidden_size"]), int(text["num_hidden_layers"])
    heads = int(text.get("num_attention_heads", 1))
    head_dim = int(text.get("head_dim") or hidden // heads)
    vocab, inner = int(text["vocab_size"]), int(text.get("intermediate_size", 4 * hidden))
    params = total_bytes // width
    if not params:  # no weights and no index: the language model alone, from its shape
        params = 2 * vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * inner)
    return Shape(params, layers, hidden, int(text.get("num_key_value_heads", heads)) * head_dim, vocab)


def estimate(cfg: PTSTConfig, stage: Stage, shape: Shape, parquet_bytes: int = 0) -> dict:
    c, g = cfg.cluster, cfg.grpo
    world = c.nnodes * c.n_gpus_per_node
    p = shape.parameters
    tokens = cfg.data.max_prompt_length + stage.max_response_length
    lora = cfg.model.lora_rank > 0
    weights_and_optimizer = (2 * p if lora else 16 * p) / world
    reference = 0 if lora else 2 * p / world
    micro = g.micro_batch_per_gpu
    activations = micro * tokens * (shape.layers * shape.hidden * 2 + 34 * shape.hidden * 2 + shape.vocab * 4 * 2)
    training = weights_and_optimizer + reference + activations
    rollout = c.gpu_memory_utilization * c.gpu_memory_gib * GIB
    responses_per_gpu = g.prompts_per_step * stage.n * c.tensor_model_parallel_size / world
    kv_all_at_once = responses_per_gpu * tokens * shape.layers * 2 * shape.kv_width * 2 / c.tensor_model_parallel_size
    host = parquet_bytes * (1 + DATALOADER_WORKERS)
    return {
        "parameters_b": round(p / 1e9, 3),
        "gpus": world,
        "training_gib": round(training / GIB, 2),
        "of_which_weights_optimizer_gib": round(weights_and_optimizer / GIB, 2),
        "of_which_reference_gib": round(reference / GIB, 2),
        "of_which_activations_gib": round(activations / GIB, 2),
        "vllm_share_gib": round(rollout / GIB, 2),
        "kv_cache_all_responses_gib": round(kv_all_at_once / GIB, 2),
        "peak_gib": round(max(training, rollout) / GIB, 2),
        "host_dataset_gib": round(host / GIB, 2),
    }


def check_memory(cfg: PTSTConfig, stage: Stage, model_folder: Path, data_dir: Path) -> dict:
    """Print the stage's estimate; warn (the estimate is not exact enough to refuse on) when it exceeds the
    configured GPU or host memory, naming what to change."""
    parquet = sum(p.stat().st_size for p in data_dir.glob("*.parquet")) if data_dir.is_dir() else 0
    est = estimate(cfg, stage, model_shape(model_folder), parquet)
    c = cfg.cluster
    print(  # noqa: T201 - the estimate is for the person about to spend GPU hours
        f"memory estimate, {stage.max_response_length} tokens x {stage.n}: per GPU {est['peak_gib']} GiB of "
        f"{c.gpu_memory_gib:g} (training {est['training_gib']} = weights+optimizer "
        f"{est['of_which_weights_optimizer_gib']} + reference {est['of_which_reference_gib']} + activations "
        f"{est['of_which_activations_gib']}; vLLM {est['vllm_share_gib']}, its KV cache for every response at once "
        f"{est['kv_cache_all_responses_gib']}); host {est['host_dataset_gib']} GiB for the dataset",
        flush=True,
    )
    if est["training_gib"] > c.gpu_memory_gib:
        LOG.warning(
            "stage (%d x %d) likely needs %.1f GiB per GPU for training, more than cluster.gpu_memory_gib=%g: "
            "add GPUs or nodes, use LoRA (model.lora_rank), or lower grpo.micro_batch_per_gpu",
            stage.max_response_length,
            stage.n,
            est["training_gib"],
            c.gpu_memory_gib,
        )
    if est["host_dataset_gib"] > c.host_memory_gib * 0.5:
        LOG.warning(
            "the parquet's embedded images need about %.1f GiB of host memory across verl's dataloader workers: "
            "set data.embed_images=false (images by path on a shared filesystem)",
            est["host_dataset_gib"],
        )
    return est
