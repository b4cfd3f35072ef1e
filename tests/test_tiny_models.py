"""Tiny models of each family: built offline and deterministically, opened by the one loader (also in the file
layouts real hub checkpoints use), generate from one- and two-image prompts, and train."""

import json
import shutil

import pytest
import torch
from PIL import Image

from pipeline.models.load import load_model_and_processor
from pipeline.models.tiny import REASONING_TOKENS, build_tiny_model, folder_digest

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl"]


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):
    """The session's tiny models, with Qwen3-VL built here where the shared fixture does not build it."""
    if "qwen3_vl" in tiny_models:
        return tiny_models
    return {**tiny_models, "qwen3_vl": build_tiny_model("qwen3_vl", tmp_path_factory.mktemp("tiny3") / "q3", seed=0)}


def prompt_inputs(processor, n_images: int):
    colours = ["red", "blue", "green"][:n_images]
    images = [Image.new("RGB", (64 + 16 * i, 48), c) for i, c in enumerate(colours)]
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": "How many circles are there?"}]
    text = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    return processor(text=[text], images=[images], return_tensors="pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_bytes(family, tmp_path):
    a = folder_digest(build_tiny_model(family, tmp_path / "a", seed=3))
    b = folder_digest(build_tiny_model(family, tmp_path / "b", seed=3))
    c = folder_digest(build_tiny_model(family, tmp_path / "c", seed=4))
    assert a == b and a != c


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_has_family_and_reasoning_tokens(family, models):
    _, processor = load_model_and_processor(models[family])
    tok = processor.tokenizer
    needed = ["<|im_start|>", "<|im_end|>"] + (
        ["<img>", "</img>", "<IMG_CONTEXT>"]
        if family == "internvl"
        else ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    )
    for t in needed + REASONING_TOKENS:
        assert tok.convert_tokens_to_ids(t) != tok.unk_token_id and len(tok.tokenize(t)) == 1, t
    # Reasoning tags must survive skip_special_tokens, or every reward would read an empty string.
    text = "<think>two circles</think><answer>2</answer>"
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n_images", [1, 2])
def test_generate_from_image_prompts(family, n_images, models):
    model, processor = load_model_and_processor(models[family])
    inputs = prompt_inputs(processor, n_images)
    image_token = processor.image_token_id
    assert (inputs["input_ids"] == image_token).sum() > 0
    if family != "internvl":
        assert "mm_token_type_ids" in inputs and len(inputs["image_grid_thw"]) == n_images
    else:
        # InternVL tiles each image dynamically; each image still gets exactly one <img>…</img> block.
        assert (inputs["input_ids"] == processor.start_image_token_id).sum() == n_images
        assert inputs["pixel_values"].shape[0] >= n_images
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new) <= 12
    again = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert torch.equal(out, again)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_mm_token_type_ids_reaches_the_model(family, models):
    """The processor returns mm_token_type_ids and the model depends on it: some transformers 5 releases silently
    fall back to 1-D positions without it (logits differ), newer ones refuse (ValueError)."""
    model, processor = load_model_and_processor(models[family])
    inputs = prompt_inputs(processor, 1)
    with torch.no_grad():
        with_ids = model(**inputs).logits
        try:
            without = model(**{k: v for k, v in inputs.items() if k != "mm_token_type_ids"}).logits
        except ValueError as e:
            assert "mm_token_type_ids" in str(e)
            return
    assert not torch.allclose(with_ids, without)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_optimizer_step(family, models):
    model, processor = load_model_and_processor(models[family])
    model.train()
    inputs = prompt_inputs(processor, 2)
    labels = inputs["input_ids"].clone()
    labels[labels == processor.image_token_id] = -100
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(**inputs, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p)]
    assert any("visual" in n or "vision" in n for n in changed), "the vision tower got no update"
    assert any("lm_head" in n for n in changed)


def _to_hub_layout(src, dst, family):
    """Rewrite a tiny folder into the file layout of the published checkpoints (Qwen2.5-VL-7B-Instruct:
    chat_template.json, min/max_pixels keys; Qwen3-VL-*-Instruct and InternVL3-*-hf: `...Fast` class name, a video
    processor config)."""
    shutil.copytree(src, dst)
    template = (dst / "chat_template.jinja").read_text()
    (dst / "chat_template.jinja").unlink()
    (dst / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    pre = json.loads((dst / "preprocessor_config.json").read_text())
    if family == "internvl":
        pre["image_processor_type"] = "GotOcr2ImageProcessorFast"
        (dst / "video_preprocessor_config.json").write_text(
            json.dumps({"video_processor_type": "InternVLVideoProcessor", "processor_class": "InternVLProcessor"})
        )
    elif family == "qwen3_vl":
        pre["image_processor_type"] = "Qwen2VLImageProcessorFast"
        (dst / "video_preprocessor_config.json").write_text(
            json.dumps({"video_processor_type": "Qwen3VLVideoProcessor", "processor_class": "Qwen3VLProcessor"})
        )
    else:
        size = pre.pop("size")
        pre.update(min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
        pre["image_processor_type"] = "Qwen2VLImageProcessor"
    (dst / "preprocessor_config.json").write_text(json.dumps(pre))
    return dst


@pytest.mark.parametrize("family", FAMILIES)
def test_loader_opens_hub_layout(family, models, tmp_path):
    hub = _to_hub_layout(models[family], tmp_path / "hub", family)
    model, processor = load_model_and_processor(hub)
    ref_model, ref_processor = load_model_and_processor(models[family])
    a, b = prompt_inputs(processor, 1), prompt_inputs(ref_processor, 1)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.allclose(a["pixel_values"], b["pixel_values"])


def test_loader_refuses_unknown_folder(tmp_path):
    from pipeline.errors import Vr1Error

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(Vr1Error, match="model_type 'llama' is not supported"):
        load_model_and_processor(tmp_path)
    with pytest.raises(Vr1Error, match="no config.json"):
        load_model_and_processor(tmp_path / "missing")
