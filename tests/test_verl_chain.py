"""Stages chain on verl, full and LoRA: a real verl actor checkpoint (written by verl's own FSDPCheckpointManager from
the tiny Qwen2.5-VL, sharded over 1 or 2 CPU ranks), verl's own model merger, then our completion step; the next
stage's start folder loads and holds the trained weights (LoRA: base + alpha/r * B @ A), and a LoRA SFT output is
merged before stage 1 starts from it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.config import build
from pipeline.errors import Vr1Error
from rl.ptst.config import PTSTConfig, Stage

WRITER = Path(__file__).parent / "verl_checkpoint.py"
ADAPTED = ("q_proj", "v_proj")
PREFIX = "base_model.model."


def write_checkpoint(model_dir: Path, stage_dir: Path, world: int, kind: str, step: int) -> dict:
    actor = stage_dir / "checkpoints" / f"global_step_{step}" / "actor"
    out = subprocess.run(
        [sys.executable, str(WRITER), str(model_dir), str(actor), str(world), kind, str(step)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return torch.load(stage_dir / "checkpoints" / "trained.pt")


def loaded_state(folder: Path) -> dict:
    from pipeline.models.load import load_model_and_processor

    model, processor = load_model_and_processor(folder)
    assert processor.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    return {k: v.float() for k, v in model.state_dict().items()}


def assert_complete_folder(final: Path) -> None:
    from verl.utils import hf_tokenizer

    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json"):
        assert (final / name).is_file(), name
    assert (final / "chat_template.jinja").is_file()
    assert hf_tokenizer(str(final)) is not None  # what verl's workers load from a model path
    from verl.utils.model import AutoModelForVision2Seq  # the class verl's actor builds a VLM with

    assert type(AutoModelForVision2Seq.from_pretrained(str(final))).__name__ == "Qwen2_5_VLForConditionalGeneration"


@pytest.mark.slow
def test_full_stage_final_holds_the_trained_weights(tiny_models, tmp_path, capsys):
    from rl.ptst.verl_engine import run_stage

    start = tiny_models["qwen2_5_vl"]
    stage_dir = tmp_path / "stage_1"
    trained = write_checkpoint(start, stage_dir, world=1, kind="full", step=3)
    cfg = build(PTSTConfig, {})
    result = run_stage(cfg, 1, Stage(64, 2, 3), str(start), stage_dir, {"train": "t", "val": "v"}, "x")
    assert "merging only" in capsys.readouterr().out  # the checkpoint completes the stage: nothing relaunched
    final = stage_dir / "final"
    assert result["final"] == str(final) and result["steps"] == 3
    assert "preprocessor_config.json" in result["processor_files_added"]  # verl's merger leaves it out
    assert_complete_folder(final)
    got, before = loaded_state(final), loaded_state(start)
    assert set(got) == set(trained)
    for key, value in trained.items():  # verl's merger writes bf16
        torch.testing.assert_close(got[key], value.float(), atol=2e-3, rtol=1e-2)
    moved = [k for k in trained if not torch.allclose(before[k], got[k], atol=1e-3)]
    assert len(moved) > len(trained) // 2  # the start is not what came back


@pytest.mark.slow
def test_lora_stage_final_has_the_adapter_folded_in(tiny_models, tmp_path):
    from rl.ptst.verl_engine import complete_final, run_stage

    start = tiny_models["qwen2_5_vl"]
    stage_dir = tmp_path / "stage_1"
    trained = write_checkpoint(start, stage_dir, world=2, kind="lora", step=2)
    cfg = build(PTSTConfig, {"model": {"lora_rank": 4, "lora_alpha": 8}})
    result = run_stage(cfg, 1, Stage(64, 2, 2), str(start), stage_dir, {"train": "t", "val": "v"}, "x")
    final = stage_dir / "final"
    assert_complete_folder(final)
    got = loaded_state(final)
    adapted = [k for k in trained if ".lora_A." in k]
    assert result["lora_weights_merged"] == len(adapted) == 4  # q and v in both language layers
    for key in adapted:
        module = key.split(".lora_A.")[0]
        parts = (".base_layer.weight", ".lora_A.default.weight", ".lora_B.default.weight")
        base, a, b = (trained[module + part].float() for part in parts)
        target = module.removeprefix(PREFIX) + ".weight"
        torch.testing.assert_close(got[target], base + (8 / 4) * b @ a, atol=2e-3, rtol=1e-2)
        assert (got[target] - base).abs().max() > 0.01  # the adapter's training is in the weights
    plain = [k for k in trained if "lora_" not in k and "base_layer" not in k]
    for key in plain:
        torch.testing.assert_close(got[key.removeprefix(PREFIX)], trained[key].float(), atol=2e-3, rtol=1e-2)
    # a rerun of the completion finds nothing left to fold (the adapter is kept as lora_adapter.merged)
    assert "lora_weights_merged" not in complete_final(final, start, 8)
    assert (final / "lora_adapter.merged" / "adapter_config.json").is_file()


def test_a_partial_stage_resumes_from_verls_latest_checkpoint(tmp_path, monkeypatch, capsys):
    from rl.ptst import verl_engine

    checkpoints = tmp_path / "stage_2" / "checkpoints"
    (checkpoints / "global_step_50" / "actor").mkdir(parents=True)
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("50")
    assert verl_engine.latest_checkpoint(checkpoints) == 50
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("75")  # tracker ahead of a save that died
    assert verl_engine.latest_checkpoint(checkpoints) is None
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("50")

    launched = []

    def verl_dies(cmd, stage_dir, *mirror):
        launched.append(cmd)
        (stage_dir / "metrics.jsonl").write_text('{"step": 51, "reward_mean": 0.1}\n{"step": 51, "reward_mean": 0.2}\n')
        return 1

    monkeypatch.setattr(verl_engine, "stream", verl_dies)
    cfg = build(PTSTConfig, {})
    with pytest.raises(Vr1Error, match="rerun to resume"):
        verl_engine.run_stage(cfg, 2, Stage(64, 2, 100), "/m", tmp_path / "stage_2", {"train": "t", "val": "v"}, "x")
    assert "resuming from verl's checkpoint at step 50" in capsys.readouterr().out
    cmd = launched[0]
    assert "trainer.resume_mode=auto" in cmd and f"trainer.default_local_dir={checkpoints}" in cmd
    assert "trainer.max_actor_ckpt_to_keep=2" in cmd
    rows = [json.loads(x) for x in (tmp_path / "stage_2" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 51, "reward_mean": 0.2}]  # the rerun's row wins


@pytest.mark.slow
def test_a_lora_sft_output_is_merged_before_stage_1(tiny_models, tmp_path):
    from peft import LoraConfig, get_peft_model

    from pipeline.models.load import load_model_and_processor
    from rl.ptst.main import first_start

    base = tiny_models["qwen2_5_vl"]
    model, _ = load_model_and_processor(base)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=r".*language_model.*\.q_proj"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    sft_run = tmp_path / "runs" / "sft" / "lora"
    peft_model.save_pretrained(sft_run / "adapter")  # what `vr1 sft` with mode=lora, lora.merge=false leaves
    config = json.loads((sft_run / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base)
    cfg = build(PTSTConfig, {"model": {"start": str(sft_run / "final")}})
    loaded, local = first_start(cfg, tmp_path / "ptst", "verl")
    assert Path(loaded) == tmp_path / "ptst" / "start" == local
    got = loaded_state(local)
    ref = {k: v.float() for k, v in peft_model.state_dict().items()}
    key = "model.language_model.layers.1.self_attn.q_proj.weight"
    a = ref[f"{PREFIX}{key.removesuffix('.weight')}.lora_A.default.weight"]
    b = ref[f"{PREFIX}{key.removesuffix('.weight')}.lora_B.default.weight"]
    w = ref[f"{PREFIX}{key.removesuffix('.weight')}.base_layer.weight"]
    torch.testing.assert_close(got[key], w + (16 / 4) * b @ a, atol=1e-5, rtol=1e-4)
    assert (got[key] - w).abs().max() > 0.01
