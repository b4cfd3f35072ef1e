"""SFT on CPU with tiny models: a step per family, loss on assistant tokens only, padding-free equals padded (loss,
logits, gradients), modes freeze what they say, LoRA merge keeps the logits, preflight catches bad samples, outputs
load back."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.cli import main
from pipeline.config import build
from pipeline.errors import Vr1Error
from pipeline.models.load import load_model_and_processor
from rl.sft.collator import VLMCollator
from rl.sft.config import SFTConfig, SFTData
from rl.sft.data import preflight

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "internvl"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    Image.new("RGB", (60, 50), "red").save(d / "a.png")
    Image.new("RGB", (90, 40), "blue").save(d / "b.png")
    return [
        {
            "uid": "one",
            "images": [str(d / "a.png")],
            "prompt": "How many circles?",
            "response": "<think>\nI count two circles.\n</think>\n<answer>2</answer>",
        },
        {
            "uid": "two",
            "images": [str(d / "a.png"), str(d / "b.png")],
            "prompt": "Which image is wider?",
            "response": "<think>\nThe second one.\n</think>\n<answer>B</answer>",
        },
        {"uid": "text", "images": [], "prompt": "Say hi.", "response": "<answer>hi</answer>"},
    ]


def sft_args(tmp_path, model, name, *overrides, demo_dir=None):
    base = [
        "sft",
        "--config",
        "sft/demo",
        "--name",
        name,
        "--runs-root",
        str(tmp_path),
        f"model={model}",
        "data.coldstart_runs=[]",
        "schedule.max_steps=2",
        "schedule.per_device_batch_size=2",
        "schedule.save_steps=1",
        "schedule.logging_steps=1",
        "data.limit=6",
        "report_to=[]",
    ]
    if demo_dir is not None:
        base.append(f"data.manifests=[{demo_dir / 'manifest_train.yaml'}]")
    return base + list(overrides)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_one_sft_step_per_family_and_the_output_loads(family, tiny_models, demo_dir, tmp_path):
    assert main(sft_args(tmp_path, tiny_models[family], family, "schedule.max_steps=1", demo_dir=demo_dir)) == 0
    run = tmp_path / "sft" / family
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 1 and summary["samples"] == 6
    before, _ = load_model_and_processor(tiny_models[family])
    after, processor = load_model_and_processor(run / "final")  # the project's loader reads the output
    changed = [
        n
        for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert changed and processor.tokenizer.convert_tokens_to_ids("<think>") is not None
    from transformers import AutoConfig, AutoModelForImageTextToText

    assert AutoConfig.from_pretrained(run / "final").model_type == family  # as TRL / verl / vLLM open it
    AutoModelForImageTextToText.from_pretrained(run / "final")
    pre = json.loads((run / "final" / "preprocessor_config.json").read_text())
    assert not pre["image_processor_type"].endswith("Pil") and pre["processor_class"].endswith("Processor")
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["step"] == 1 and "loss" in metrics[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_tokens_contribute_nothing_to_the_loss(family, tiny_models, rows):
    model, processor = load_model_and_processor(tiny_models[family])
    batch = VLMCollator(processor)(rows)
    labels = batch["labels"]
    for i, row in enumerate(rows):  # exactly the response (+ end of turn) is labelled, nothing before it
        n_label = int((labels[i] != -100).sum())
        completion = processor.tokenizer(row["response"], add_special_tokens=False)["input_ids"]
        assert len(completion) < n_label <= len(completion) + 3
    with torch.no_grad():
        out = model(**batch, use_cache=False)
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    target = labels[:, 1:].reshape(-1)
    mask = target != -100
    manual = F.cross_entropy(logits[mask], target[mask])
    assert torch.allclose(out.loss, manual, atol=1e-5)
    # the gradient reaching prompt positions' logits is exactly zero
    model.train()
    logits_all = model(**batch, use_cache=False).logits
    logits_all.retain_grad()
    loss = F.cross_entropy(logits_all[:, :-1].reshape(-1, logits_all.shape[-1])[mask], target[mask])
    loss.backward()
    prompt_pos = labels[:, 1:] == -100
    assert logits_all.grad[:, :-1][prompt_pos].abs().max() == 0


def _grads(model, batch):
    model.zero_grad(set_to_none=True)
    out = model(**{**batch, "use_cache": False})
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), out.logits.detach(), grads


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_free_equals_padded(family, tiny_models, rows):
    """One row, no pad token, and the same loss, per-sample logits and gradients as the padded batch: under
    transformers' own sdpa (block-diagonal mask from the positions) and under PACKED_SDPA (attention per sample)."""
    from rl.sft.collator import PACKED_SDPA, use_packed_attention

    model, processor = load_model_and_processor(tiny_models[family])
    model.train()  # the tiny configs have no dropout: train mode is deterministic
    long_cot = {
        **rows[0],
        "uid": "long",
        "response": "<think>\n" + "Wait, let me count again. " * 40 + "\n</think>\n<answer>2</answer>",
    }
    batch_rows = rows + [long_cot] + [{**rows[2], "uid": f"short{i}", "prompt": "Hi" + "!" * i} for i in range(3)]
    padded = VLMCollator(processor)(batch_rows)
    free = VLMCollator(processor, packing=True, rope_index=getattr(model.model, "get_rope_index", None))(batch_rows)
    lengths = padded["attention_mask"].sum(1).tolist()
    assert free["input_ids"].shape == (1, sum(lengths)) and len(set(lengths)) > 2
    assert torch.equal(free["input_ids"][0], padded["input_ids"][padded["attention_mask"].bool()])

    loss_padded, logits_padded, grads_padded = _grads(model, padded)
    for attention in ("sdpa", PACKED_SDPA):
        if attention == PACKED_SDPA:
            assert use_packed_attention(model) == PACKED_SDPA
        loss, logits, grads = _grads(model, free)
        assert torch.allclose(loss, loss_padded, atol=1e-5), (family, attention)
        assert grads.keys() == grads_padded.keys()
        for name, g in grads.items():
            assert torch.allclose(g, grads_padded[name], atol=1e-5, rtol=1e-4), (family, attention, name)
        off = 0
        for i, n in enumerate(lengths):
            assert torch.allclose(logits_padded[i, :n], logits[0, off : off + n], atol=1e-4), (family, attention, i)
            off += n
    # a padded batch under PACKED_SDPA is plain sdpa: same loss and gradients as before the switch
    loss, _, grads = _grads(model, padded)
    assert torch.equal(loss, loss_padded) and all(torch.equal(g, grads_padded[n]) for n, g in grads.items())


def test_packed_attention_builds_no_mask_and_stays_within_each_sample():
    from transformers.masking_utils import sdpa_mask

    from rl.sft.collator import packed_sdpa_forward, packed_sdpa_mask, span_lengths

    assert span_lengths(torch.tensor([0, 1, 2, 0, 1, 0, 0, 1, 2, 3])) == [3, 2, 1, 4]
    assert span_lengths(torch.arange(5)) == [5]
    # packed rows: no mask at all; a padded batch: exactly sdpa's mask
    assert packed_sdpa_mask(batch_size=1, q_length=9, kv_length=9, attention_mask=None) is None
    pad = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    expected = sdpa_mask(batch_size=2, q_length=4, kv_length=4, attention_mask=pad)
    assert torch.equal(packed_sdpa_mask(batch_size=2, q_length=4, kv_length=4, attention_mask=pad), expected)
    # two samples in one row attend as they would alone
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 7, 8) for _ in range(3))
    module = torch.nn.Module()
    out, _ = packed_sdpa_forward(module, q, k, v, None, position_ids=torch.tensor([[0, 1, 2, 0, 1, 2, 3]]))
    for sl in (slice(0, 3), slice(3, 7)):
        alone = F.scaled_dot_product_attention(q[:, :, sl], k[:, :, sl], v[:, :, sl], is_causal=True)
        assert torch.allclose(out[:, sl], alone.transpose(1, 2), atol=1e-6)


def test_modes_freeze_what_they_say(tiny_models):
    from pipeline.models.parts import part_of
    from rl.sft.config import LoRA
    from rl.sft.modes import apply_mode

    for family in FAMILIES:
        for mode, frozen in (
            ("freeze_vision", {"vision"}),
            ("freeze_projector", {"projector"}),
            ("freeze_vision_projector", {"vision", "projector"}),
            ("full", set()),
        ):
            model, _ = load_model_and_processor(tiny_models[family])
            model, counts = apply_mode(model, mode)
            for part in ("vision", "projector", "language"):
                assert (counts[part] == 0) == (part in frozen), (family, mode, counts)
            assert all(p.requires_grad == (part_of(n, family) not in frozen) for n, p in model.named_parameters())
        model, _ = load_model_and_processor(tiny_models[family])
        model, counts = apply_mode(model, "lora", LoRA(r=4, alpha=8))
        assert counts["vision"] == counts["projector"] == 0 and counts["language"] > 0
        assert all("language_model" in n for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.slow
def test_lora_merge_gives_the_adapter_logits(tiny_models, demo_dir, tmp_path, rows):
    from peft import PeftModel

    model_path = tiny_models["qwen2_5_vl"]
    assert (
        main(
            sft_args(
                tmp_path, model_path, "lora", "mode=lora", "lora.r=4", "schedule.learning_rate=0.05", demo_dir=demo_dir
            )
        )
        == 0
    )
    run = tmp_path / "sft" / "lora"
    base, processor = load_model_and_processor(model_path)
    adapter = PeftModel.from_pretrained(base, run / "adapter").eval()
    merged, _ = load_model_and_processor(run / "final")
    batch = VLMCollator(processor)(rows)
    batch.pop("labels")
    with torch.no_grad():
        a = adapter(**batch, use_cache=False).logits
        m = merged.eval()(**batch, use_cache=False).logits
        b = load_model_and_processor(model_path)[0].eval()(**batch, use_cache=False).logits
    assert torch.allclose(a, m, atol=1e-4) and not torch.allclose(a, b, atol=1e-3)


def test_preflight_catches_mismatch_and_overflow(tiny_models, rows):
    _, processor = load_model_and_processor(tiny_models["qwen2_5_vl"])
    smuggled = {**rows[0], "uid": "bad-tokens", "prompt": "Look: <|image_pad|><|image_pad|> how many?"}
    long = {**rows[0], "uid": "too-long", "response": "word " * 3000}
    keep, offenders, _ = preflight(processor, [rows[0], smuggled, long, rows[1]], SFTData(cutoff_len=2048))
    assert [r["uid"] for r in keep] == ["one", "two"]
    assert {(o["uid"], o["problem"]) for o in offenders} == {("bad-tokens", "mismatch"), ("too-long", "overflow")}
    with pytest.raises(Vr1Error, match="bad-tokens"):
        preflight(processor, [rows[0], smuggled], SFTData(on_mismatch="refuse"))
    with pytest.raises(Vr1Error, match="too-long.*cutoff_len"):
        preflight(processor, [long], SFTData(cutoff_len=2048, on_overflow="refuse"))


def test_config_validation():
    with pytest.raises(Exception, match="mode 'partial' unknown"):
        build(SFTConfig, {"mode": "partial"})
    with pytest.raises(Exception, match="data.on_overflow must be one of skip, refuse with recipe vr1"):
        build(SFTConfig, {"data": {"on_overflow": "truncate"}})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_after_kill9(tiny_models, demo_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = sft_args(
        tmp_path,
        tiny_models["qwen2_5_vl"],
        "resume",
        "schedule.max_steps=12",
        "schedule.save_steps=3",
        "data.limit=24",
        demo_dir=demo_dir,
    )
    env = {**os.environ, "VR1_NO_PROGRESS": "1"}
    ckpts = tmp_path / "sft" / "resume" / "checkpoints"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / "checkpoint-6" / "trainer_state.json").exists():
        assert proc.poll() is None, "training finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "sft" / "resume" / "summary.json").exists()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "sft" / "resume" / "summary.json").read_text())
    assert summary["global_step"] == 12 and summary["resumed_from"].split("-")[-1] in ("6", "9")
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "sft" / "resume" / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(x)
    ]
    assert steps == list(range(1, 13))  # every step logged once, none twice


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_accelerate_launch_path_on_cpu(tiny_models, demo_dir, tmp_path, capsys):
    """The same code through `accelerate launch` (one CPU process here; GPUs and nodes by config)."""
    args = sft_args(
        tmp_path,
        tiny_models["internvl"],
        "accel",
        "launcher.kind=accelerate",
        "launcher.accelerate_config=configs/accelerate/cpu.yaml",
        demo_dir=demo_dir,
    )
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "accelerate.commands.launch --config_file configs/accelerate/cpu.yaml" in out
    summary = json.loads((tmp_path / "sft" / "accel" / "summary.json").read_text())
    assert summary["global_step"] == 2 and (tmp_path / "sft" / "accel" / "final" / "model.safetensors").is_file()


def test_paper_config_composes():
    from pipeline.config import load_config

    cfg = load_config(SFTConfig, "sft/vision_r1_7b")
    s = cfg.schedule
    assert (cfg.mode, cfg.data.cutoff_len, s.learning_rate, s.num_train_epochs, s.lr_scheduler_type) == (
        "full",
        16384,
        5e-6,
        2,
        "cosine",
    )
    assert s.warmup_ratio == 0.05 and s.bf16 and s.per_device_batch_size * s.gradient_accumulation_steps * 8 == 32
    d = cfg.data
    assert (d.recipe, d.max_pixels, d.min_pixels, d.on_overflow) == ("llama_factory", 589824, 1024, "truncate")
    assert d.manifests == ["data_manifests/vision_r1_cold.yaml", "data_manifests/vision_r1_cold_mulberry.yaml"]
    own = load_config(SFTConfig, "sft/vision_r1_7b_own")
    assert own.data.coldstart_runs == ["latest"] and not own.data.manifests and own.data.recipe == "llama_factory"
    import yaml

    accel = yaml.safe_load(open(cfg.launcher.accelerate_config))
    ds = json.load(open(accel["deepspeed_config"]["deepspeed_config_file"]))
    assert accel["num_processes"] == 8 and ds["zero_optimization"]["stage"] == 3


def test_sft_targets_are_explicit(tiny_models, demo_dir, tmp_path, capsys):
    from pipeline.config import load_config
    from rl.sft.config import SFTConfig
    from rl.sft.data import load_examples

    model = tiny_models["qwen2_5_vl"]
    # plain question/answer data under the default target: one clear line, no traceback, latest unmoved
    assert main(sft_args(tmp_path, model, "none", "data.target=coldstart", demo_dir=demo_dir)) == 2
    err = capsys.readouterr().err
    assert "has a training target: no training target for data.target=coldstart" in err
    assert "data.target=answer" in err and "Traceback" not in err and not (tmp_path / "sft" / "latest").exists()

    cfg = load_config(
        SFTConfig,
        "sft/demo",
        [
            f"data.manifests=[{demo_dir / 'manifest_train.yaml'}]",
            "data.coldstart_runs=[]",
            "data.target=answer",
            "data.limit=3",
        ],
    )
    examples, skipped = load_examples(cfg.data)
    golds = [json.loads(x)["answer"] for x in (demo_dir / "train.jsonl").read_text().splitlines()[:3]]
    assert not skipped and [e.response for e in examples] == [f"<answer>{g}</answer>" for g in golds]
    assert (
        main(sft_args(tmp_path, model, "answers", "data.target=answer", "schedule.max_steps=1", demo_dir=demo_dir)) == 0
    )
    assert (tmp_path / "sft" / "latest").resolve().name == "answers"


def test_the_renamed_target_key_still_works_with_a_warning(demo_dir):
    from pipeline.config import load_config
    from rl.sft.config import SFTConfig

    with pytest.warns(
        FutureWarning, match="'data.include_reference_solutions' is deprecated.*'data.target: reference_solution'"
    ):
        cfg = load_config(SFTConfig, None, ["data.include_reference_solutions=true"])
    assert cfg.data.target == "reference_solution"


@pytest.mark.slow
def test_llama_factory_recipe_trains_end_to_end(tiny_models, tmp_path, capsys):
    """`vr1 sft` with recipe llama_factory on a published-layout ShareGPT set: the preflight says what the recipe
    does (the system-turn record dropped, nothing truncated), training runs, the loss is finite."""
    fix = Path(__file__).parent / "fixtures" / "llamafactory" / "records"
    manifest = tmp_path / "lf.yaml"
    spec = {"name": "lf", "format": "sharegpt", "path": str(fix / "mulberry.json"), "image_root": str(fix)}
    manifest.write_text(json.dumps(spec))
    args = sft_args(
        tmp_path,
        tiny_models["qwen2_5_vl"],
        "lf",
        f"data.manifests=[{manifest}]",
        "data.target=coldstart",
        "data.recipe=llama_factory",
        "data.max_pixels=589824",
        "data.min_pixels=1024",
        "data.on_overflow=truncate",
        "packing=false",
    )
    assert main(args) == 0
    pre = json.loads((tmp_path / "sft" / "lf" / "preflight.json").read_text())
    assert pre["recipe"]["recipe"] == "llama_factory" and pre["recipe"]["dropped"]["recipe"] == 1
    assert pre["recipe"]["trained"] == 4 and pre["recipe"]["truncated"]["samples"] == 0
    losses = [json.loads(x).get("loss") for x in (tmp_path / "sft" / "lf" / "metrics.jsonl").read_text().splitlines()]
    assert [x for x in losses if x is not None] and all(math.isfinite(x) for x in losses if x is not None)


def test_a_run_name_never_resumes_checkpoints_trained_on_other_inputs(tiny_models, demo_dir, tmp_path, capsys):
    model = tiny_models["qwen2_5_vl"]
    args = sft_args(tmp_path, model, "named", "schedule.max_steps=1", demo_dir=demo_dir)
    assert main(args) == 0
    checkpoint = tmp_path / "sft" / "named" / "checkpoints" / "checkpoint-1"
    assert checkpoint.is_dir()
    assert main([*args, "schedule.max_steps=2"]) == 0  # more steps on the same inputs: a resume
    assert "resumed from" in capsys.readouterr().out
    final = tmp_path / "sft" / "named" / "final"
    before = {n: p.clone() for n, p in load_model_and_processor(final)[0].named_parameters()}
    # the same command again: the run is complete (mid-epoch), so no step past max_steps is trained
    assert main([*args, "schedule.max_steps=2"]) == 0
    capsys.readouterr()
    summary = json.loads((tmp_path / "sft" / "named" / "summary.json").read_text())
    assert summary["global_step"] == 2 and not (checkpoint.parent / "checkpoint-3").exists()
    after = dict(load_model_and_processor(final)[0].named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)
    # other data under the same name: refused, with what changed, and the checkpoints kept
    assert main([*args, "data.limit=4"]) == 2
    err = capsys.readouterr().err
    assert "trained on other inputs" in err and "data.limit: 6 -> 4" in err and "training data (6 -> 4" in err
    assert checkpoint.is_dir()
    # on_changed_inputs=restart trains afresh on the new inputs
    assert main([*args, "data.limit=4", "on_changed_inputs=restart"]) == 0
    out = capsys.readouterr().out
    assert "resumed from" not in out and json.loads((checkpoint.parent / "inputs.json").read_text())["samples"] == 4


def test_a_resumed_run_continues_from_the_checkpoints_weights(tiny_models, demo_dir, tmp_path):
    """transformers 5.10 writes checkpoints in the hub's key layout and reads them back without converting: a
    resume used to continue from the starting weights. Stopping after step 1 and resuming to step 2 must give the
    weights of an uninterrupted 2-step run."""
    from safetensors.torch import load_file

    model = tiny_models["qwen2_5_vl"]
    straight = sft_args(tmp_path, model, "straight", "schedule.max_steps=2", demo_dir=demo_dir)
    assert main(straight) == 0
    assert main(sft_args(tmp_path, model, "stopped", "schedule.max_steps=1", demo_dir=demo_dir)) == 0
    assert main(sft_args(tmp_path, model, "stopped", "schedule.max_steps=2", demo_dir=demo_dir)) == 0
    a = load_file(str(tmp_path / "sft" / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "sft" / "stopped" / "final" / "model.safetensors"))
    base = load_file(str(model / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert any(not torch.equal(a[k], base[k]) for k in a)  # and training moved them
