"""Qwen3-VL as a supported family: its tiny model renders, loads, round-trips and generates; its chat template and
vision tokens match what the processor expands; its parts cover every parameter; verl 0.9.1's own rope binding and
position ids agree with the model's; and both trainers (SFT, GRPO on TRL) take a step with it on CPU."""

import json
import types

import pytest
import torch
from PIL import Image
from test_verl_data import without_torchvision  # noqa: F401  (verl's image path without torchvision)

from pipeline.cli import main
from pipeline.models.load import (
    FAMILIES,
    Qwen3VLImageOnlyProcessor,
    family_of,
    family_of_model,
    load_model_and_processor,
    save_model_folder,
)
from pipeline.models.tiny import build_tiny_model, folder_digest


@pytest.fixture(scope="module")
def q3(tmp_path_factory):
    return build_tiny_model("qwen3_vl", tmp_path_factory.mktemp("tiny") / "qwen3_vl", seed=0)


def images(n: int):
    return [Image.new("RGB", (64 + 40 * i, 48 + 30 * i), c) for i, c in enumerate(["red", "blue", "green"][:n])]


def render(processor, n_images: int, **kwargs) -> str:
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": "How many circles?"}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False, **kwargs
    )


def test_chat_template_is_qwen3_vls(q3):
    _, processor = load_model_and_processor(q3)
    text = render(processor, 2)
    # no default system turn (Qwen2-VL / Qwen2.5-VL add one), a bare assistant turn to generate into
    assert text == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>"
        "How many circles?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "Picture 2: <|vision_start|>" in render(processor, 2, add_vision_id=True)
    with_system = processor.apply_chat_template(
        [{"role": "system", "content": "Think first."}, {"role": "user", "content": "Hi"}], tokenize=False
    )
    assert with_system == "<|im_start|>system\nThink first.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"


@pytest.mark.parametrize("n_images", [1, 2])
def test_image_tokens_match_the_grid(q3, n_images):
    _, processor = load_model_and_processor(q3)
    inputs = processor(text=[render(processor, n_images)], images=[images(n_images)], return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    tok = processor.tokenizer
    start, end = tok.convert_tokens_to_ids("<|vision_start|>"), tok.convert_tokens_to_ids("<|vision_end|>")
    grid = inputs["image_grid_thw"]
    assert grid.shape == (n_images, 3) and ids.count(start) == ids.count(end) == n_images
    # each image's run of pads between its vision markers is its grid over the 2x2 merge; 16-pixel patches
    runs = [ids[s + 1 : ids.index(end, s)] for s in (i for i, t in enumerate(ids) if t == start)]
    assert [len(r) for r in runs] == (grid.prod(-1) // 4).tolist()
    assert all(set(r) == {processor.image_token_id} for r in runs)
    assert inputs["pixel_values"].shape == (int(grid.prod(-1).sum()), 3 * 2 * 16 * 16)
    assert len(set(map(tuple, grid.tolist()))) == n_images  # differently sized images, different grids
    assert (inputs["mm_token_type_ids"][0] == 1).sum() == sum(len(r) for r in runs)


def test_builds_deterministically(tmp_path):
    a = folder_digest(build_tiny_model("qwen3_vl", tmp_path / "a", seed=5))
    b = folder_digest(build_tiny_model("qwen3_vl", tmp_path / "b", seed=5))
    c = folder_digest(build_tiny_model("qwen3_vl", tmp_path / "c", seed=6))
    assert a == b != c
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["model_type"] == "qwen3_vl" and cfg["vision_config"]["patch_size"] == 16
    assert cfg["vision_config"]["deepstack_visual_indexes"] == [0, 1]
    assert cfg["text_config"]["rope_parameters"]["mrope_interleaved"] is True
    assert json.loads((tmp_path / "a" / "processor_config.json").read_text())["processor_class"] == "Qwen3VLProcessor"


def test_loader_round_trips_and_generates(q3, tmp_path):
    model, processor = load_model_and_processor(q3)
    assert family_of(q3) is family_of_model(model) is FAMILIES["qwen3_vl"]
    assert FAMILIES["qwen3_vl"].box_frame == "grid1000"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    inputs = processor(text=[render(processor, 2)], images=[images(2)], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    assert torch.equal(out, model.generate(**inputs, max_new_tokens=10, do_sample=False))
    assert 1 <= out.shape[1] - inputs["input_ids"].shape[1] <= 10

    save_model_folder(model, processor, tmp_path / "copy")
    weights = "model.safetensors"
    assert (tmp_path / "copy" / weights).read_bytes() == (q3 / weights).read_bytes()
    model2, processor2 = load_model_and_processor(tmp_path / "copy")
    inputs2 = processor2(text=[render(processor2, 2)], images=[images(2)], return_tensors="pt")
    assert torch.equal(inputs["input_ids"], inputs2["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, model2(**inputs2).logits)

    tok = processor.tokenizer
    text = "<think>two circles</think><answer>2</answer>"
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


def test_mm_token_type_ids_are_required(q3):
    """Without them the model cannot place image tokens in 3-D M-RoPE; transformers 5.10 refuses outright."""
    model, processor = load_model_and_processor(q3)
    inputs = processor(text=[render(processor, 1)], images=[images(1)], return_tensors="pt")
    with pytest.raises(ValueError, match="mm_token_type_ids"), torch.no_grad():
        model(**{k: v for k, v in inputs.items() if k != "mm_token_type_ids"})


def test_parts_cover_every_parameter(q3):
    from pipeline.models.parts import part_of, trainable_counts
    from rl.sft.config import LoRA
    from rl.sft.modes import apply_mode

    model, _ = load_model_and_processor(q3)
    parts = {n: part_of(n, "qwen3_vl") for n, _ in model.named_parameters()}
    names = {part: [n for n, p in parts.items() if p == part] for part in ("vision", "projector", "language")}
    assert all(names.values()) and sum(map(len, names.values())) == len(parts)
    assert any(".deepstack_merger_list." in n for n in names["projector"])
    assert any(".merger.linear_fc2." in n for n in names["projector"])
    assert all(n.startswith("model.visual.") for n in names["vision"] + names["projector"])
    assert any("pos_embed" in n for n in names["vision"]) and any(".blocks." in n for n in names["vision"])
    assert all(n.startswith(("model.language_model.", "lm_head.")) for n in names["language"])
    assert trainable_counts(model, "qwen3_vl")["projector"] > 0
    for mode, frozen in (("freeze_vision", {"vision"}), ("freeze_vision_projector", {"vision", "projector"})):
        m, counts = apply_mode(load_model_and_processor(q3)[0], mode)
        assert {p for p, c in counts.items() if c == 0} == frozen
    m, counts = apply_mode(load_model_and_processor(q3)[0], "lora", LoRA(r=4, alpha=8))
    assert counts["vision"] == counts["projector"] == 0 and counts["language"] > 0


def test_one_optimizer_step_updates_tower_deepstack_and_head(q3):
    model, processor = load_model_and_processor(q3)
    model.train()
    inputs = processor(text=[render(processor, 2)], images=[images(2)], return_tensors="pt")
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == processor.image_token_id, -100)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(**inputs, labels=labels).loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    for part in ("model.visual.blocks.0.", "model.visual.deepstack_merger_list.1.", "model.visual.merger.", "lm_head"):
        assert any(n.startswith(part) for n in changed), part


def test_sft_packing_equals_padded(q3):
    from rl.sft.collator import VLMCollator

    model, processor = load_model_and_processor(q3)
    img_dir = q3.parent / "sft_imgs"
    img_dir.mkdir(exist_ok=True)
    paths = []
    for i, im in enumerate(images(2)):
        im.save(img_dir / f"{i}.png")
        paths.append(str(img_dir / f"{i}.png"))
    rows = [
        {"uid": "a", "images": paths[:1], "prompt": "Count.", "response": "<think>\ntwo\n</think>\n<answer>2</answer>"},
        {"uid": "b", "images": paths, "prompt": "Wider?", "response": "<think>\n" + "Let me look. " * 30 + "</think>"},
        {"uid": "c", "images": [], "prompt": "Hi", "response": "<answer>hi</answer>"},
    ]
    padded = VLMCollator(processor)(rows)
    packed = VLMCollator(processor, packing=True, rope_index=model.model.get_rope_index)(rows)
    assert packed["input_ids"].shape[0] < len(rows)
    with torch.no_grad():
        assert torch.allclose(model(**padded, use_cache=False).loss, model(**packed).loss, atol=1e-5)


def test_verl_binds_qwen3_vl_and_its_positions_are_the_models(q3, monkeypatch):
    """verl 0.9.1's hf_processor binds Qwen3VLModel.get_rope_index to the processor AutoProcessor returns for this
    folder (Qwen3VLProcessor, which needs torchvision here only for the video processor it adds); its agent loop's
    position ids (text row + 3 M-RoPE rows) must be the model's own, and give the model's own logits."""
    import transformers
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.utils.tokenizer.tokenizer import hf_processor

    from rl.ptst.preflight import VERL_FAMILIES, check_verl_family

    assert "qwen3_vl" in VERL_FAMILIES
    check_verl_family(q3)
    model, ours = load_model_and_processor(q3)

    class Qwen3VLProcessor(Qwen3VLImageOnlyProcessor):
        """What AutoProcessor returns for this folder on a GPU node, less the video processor (torchvision)."""

    upstream = Qwen3VLProcessor(ours.image_processor, ours.tokenizer, chat_template=ours.chat_template)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: upstream)
    processor = hf_processor(str(q3))
    assert processor is upstream and hasattr(processor, "get_rope_index")

    inputs = processor(text=[render(processor, 2)], images=[images(2)], return_tensors="pt")
    mm = {"image_grid_thw": inputs["image_grid_thw"], "mm_token_type_ids": inputs["mm_token_type_ids"]}
    worker = types.SimpleNamespace(processor=processor)
    pos = AgentLoopWorker._compute_position_ids(worker, inputs["input_ids"], inputs["attention_mask"], mm)
    own, _ = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    n = inputs["input_ids"].shape[1]
    assert pos.shape == (1, 4, n) and torch.equal(pos[0, 1:], own[:, 0])
    assert not torch.equal(pos[0, 2], pos[0, 3])  # image rows and columns really differ: 3-D, not 1-D
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, model(**inputs, position_ids=pos.transpose(0, 1)).logits)


@pytest.mark.slow
def test_one_sft_step_and_the_output_loads(q3, demo_dir, tmp_path):
    from test_sft import sft_args

    assert main(sft_args(tmp_path, q3, "q3", "schedule.max_steps=1", "data.limit=2", demo_dir=demo_dir)) == 0
    run = tmp_path / "sft" / "q3"
    assert json.loads((run / "summary.json").read_text())["global_step"] == 1
    before, _ = load_model_and_processor(q3)
    after, processor = load_model_and_processor(run / "final")
    assert family_of(run / "final").name == "qwen3_vl"
    assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))


@pytest.mark.slow
def test_one_grpo_step_on_trl(q3, demo_dir, tmp_path):
    from test_ptst import ptst_args

    # a reward that differs between completions of one prompt, so GRPO's advantages (and the update) are not zero
    reward = tmp_path / "reward.py"
    reward.write_text("def score(response, info):\n    return sum(map(ord, response)) % 101 / 100\n")
    args = ptst_args(tmp_path, demo_dir, q3, "q3", "stages=[{max_response_length: 8, n: 2, steps: 1}]")
    args = [a for a in args if not a.startswith("data.limit=")]
    args += [
        "data.limit=2",
        "data.val_limit=1",
        "grpo.prompts_per_step=1",
        "grpo.mini_batch_prompts=1",
        f"data.reward={reward}:score",
    ]
    assert main(args) == 0
    stage = tmp_path / "ptst" / "q3" / "stage_1"
    rows = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1] and rows[0]["response_length_max"] <= 8
    before, _ = load_model_and_processor(q3)
    after, _ = load_model_and_processor(stage / "final")
    assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))


@pytest.mark.slow
@pytest.mark.usefixtures("without_torchvision")
def test_verl_rlhf_dataset_sees_our_qwen3_vl_prompts(q3, tmp_path):
    """verl's own RLHFDataset, with the Qwen3-VL processor, resizes our images on 32-pixel multiples (16-pixel
    patches, 2x2 merge) to our budget and counts as many prompt and image tokens as our validation did."""
    from test_verl_data import SIZES, SYSTEM, _items, _verl_dataset
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    from pipeline.grading.geometry import smart_resize
    from pipeline.models.load import load_processor, set_pixel_budget
    from rl.ptst.config import RLData
    from rl.ptst.data import processor_budget, validate, write_parquet

    cfg = RLData(max_prompt_length=400, min_pixels=4 * 32 * 32, max_pixels=32 * 32 * 32)
    verl_processor = load_processor(q3)
    ours = load_processor(q3)
    set_pixel_budget(ours, cfg.min_pixels, cfg.max_pixels)
    measured: dict = {}
    items = _items(tmp_path)
    keep, problems = validate(items, ours, cfg, SYSTEM, processor_budget(verl_processor), measured)
    assert problems == [] and len(keep) == len(items)
    parquet = write_parquet(keep, tmp_path / "out" / "train.parquet", "train", cfg, SYSTEM)
    ds, config = _verl_dataset(parquet, verl_processor, max_prompt_length=cfg.max_prompt_length)
    assert len(ds) == len(items) and ds.image_patch_size == 16
    size_of = {f"images/{i}.png": size for i, size in enumerate(SIZES)}
    for i, (s, _root) in enumerate(keep):
        messages = ds[i]["raw_prompt"]
        rendered = verl_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images, videos, _ = RLHFDataset._process_multi_modal_info(messages, ds.image_patch_size, config)
        assert [im.size for im in images] == [
            smart_resize(*size_of[r], 32, cfg.min_pixels, cfg.max_pixels) for r in s.images
        ]
        inputs = build_multimodal_processor_inputs(verl_processor, text=[rendered], images=images, videos=videos)
        ids = inputs["input_ids"][0].tolist()
        counted = measured[f"{s.source}/{s.id}"]
        assert ids.count(verl_processor.image_token_id) == sum(counted["image_tokens"])
        assert len(ids) == counted["prompt_tokens"]


VERL_FORWARD = r"""
import sys, torch
from PIL import Image
from pipeline.models.load import load_model_and_processor
import verl.models.transformers.monkey_patch as mp

model, proc = load_model_and_processor(sys.argv[1])
ims = [Image.new("RGB", (64, 48), "red"), Image.new("RGB", (104, 78), "blue")]
content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "How many circles?"}]
text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)
inp = proc(text=[text], images=[ims], return_tensors="pt")
with torch.no_grad():
    ref = model(**inp).logits
rope, _ = model.model.get_rope_index(
    inp["input_ids"], inp["mm_token_type_ids"], image_grid_thw=inp["image_grid_thw"],
    attention_mask=inp["attention_mask"],
)
pos = torch.cat([torch.arange(inp["input_ids"].shape[1]).view(1, 1, -1), rope])  # text row + M-RoPE rows, as verl's
# verl 0.9.1 also patches TRL's value-head model when TRL is importable, and TRL 1.16 no longer has it: skipped here
mp.is_trl_available = lambda: False
mp.apply_monkey_patch(model, use_remove_padding=False)
with torch.no_grad():
    out = model(
        input_ids=inp["input_ids"], attention_mask=inp["attention_mask"], position_ids=pos,
        pixel_values=inp["pixel_values"], image_grid_thw=inp["image_grid_thw"], use_cache=False,
    )
    assert type(out).__name__ == "Qwen3VLCausalLMOutputForPPO", type(out)
    assert torch.equal(out.logits, ref), (out.logits - ref).abs().max()
    t = proc(text=["<|im_start|>user\nHi<|im_end|>\n"], return_tensors="pt")  # text-only: a dummy image runs the tower
    assert model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], use_cache=False).logits.isfinite().all()
"""


@pytest.mark.slow
def test_verls_patched_qwen3_vl_forward_gives_the_models_logits(q3):
    """verl's actor replaces Qwen3-VL's forward (its own input embedding and DeepStack path); with verl's 4-row
    position ids it must give transformers 5.10's logits. In a subprocess: the patch is global to the classes."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", VERL_FORWARD, str(q3)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
