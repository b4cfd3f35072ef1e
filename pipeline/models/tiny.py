"""Tiny random-init VLMs of real architectures, built offline, byte-identical for the same seed.

Used by the demo, the tests and the CPU benchmarks in place of downloaded checkpoints. Each folder has the hub
layout (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, preprocessor_config.json,
processor_config.json, chat_template.jinja, generation_config.json) so every consumer reads it as it reads a real
checkpoint of the family.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from pipeline.errors import Vr1Error
from pipeline.io import atomic_path
from pipeline.models.chat_templates import INTERNVL_TEMPLATE, QWEN3_VL_TEMPLATE, QWEN_VL_TEMPLATE
from pipeline.models.load import FAMILIES, save_model_folder

REASONING_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
INTERNVL_NAMED = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
INTERNVL_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    *INTERNVL_NAMED.values(),
]

# Small sizes that still exercise every code path: M-RoPE, window attention, patch merging, pixel shuffle.
TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
# "small" keeps the layout with attention heads of 64 dimensions (text and vision), the smallest that GPU attention
# kernels (vLLM's, flash-attn's) take: the GPU smoke test uses it; "tiny" (16-dimensional heads) is for CPU tests.
SMALL_TEXT = dict(TEXT, hidden_size=256, intermediate_size=512)
SMALL_VISION = dict(hidden_size=128, intermediate_size=256, num_heads=2)
IMAGE_PIXELS = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)  # 4..64 visual tokens per image
# Qwen3-VL's patches are 16 pixels (32 per visual token after the 2x2 merge): the same 4..64 tokens per image
QWEN3_VL_IMAGE_PIXELS = dict(min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 64)
CHAT_TEMPLATES = {
    "qwen2_vl": QWEN_VL_TEMPLATE,
    "qwen2_5_vl": QWEN_VL_TEMPLATE,
    "qwen3_vl": QWEN3_VL_TEMPLATE,
    "internvl": INTERNVL_TEMPLATE,
}


def _corpus(seed: int) -> list[str]:
    """Deterministic text close to what the tiny models will see: prompts, reasoning, numbers, LaTeX."""
    rng = random.Random(seed)
    words = (
        "the a an of and to in is it that this there are how many what which image picture shows count "
        "circle circles square squares triangle triangles star red green blue yellow purple orange black white "
        "bar chart value sum difference total angle degrees length segment point line left right first second "
        "larger smaller more fewer objects question answer options choose correct final so therefore wait let "
        "me check again think step by step first then because each one two three four five six seven eight "
        "nine ten describe description detailed scene background color shape number compare both images"
    ).split()
    lines = []
    for _ in range(3000):
        n = rng.randint(4, 16)
        toks = [rng.choice(words) for _ in range(n)]
        if rng.random() < 0.5:
            toks.insert(rng.randint(0, n), str(rng.randint(0, 1000)))
        lines.append(" ".join(toks).capitalize() + rng.choice([".", "?", "!", ":", ","]))
    lines += [f"\\frac{{{i}}}{{{i + 1}}} + \\sqrt{{{i}}} = x^{{2}} \\times {i}" for i in range(100)]
    lines += [f"<think>{s}</think><answer>{i}</answer>" for i, s in enumerate(lines[:50])]
    lines += ["A. B. C. D. (A) (B) (C) (D) Final Answer: \\boxed{C}", '[{"bbox_2d": [10, 20, 30, 40], "label": "x"}]']
    return lines


def build_tokenizer(family: str, seed: int = 0, vocab_size: int = 1000):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    special = INTERNVL_SPECIAL if family == "internvl" else QWEN_SPECIAL
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[special[0]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    state = json.loads(tok.to_str())
    vocab, merges = state["model"]["vocab"], state["model"]["merges"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in merges]

    kwargs: dict = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None}
    named = INTERNVL_NAMED if family == "internvl" else {}
    extra = [t for t in special[1:] if t not in named.values() and t != "<|im_end|>"]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, extra_special_tokens=named or None, **kwargs)
    tokenizer.add_tokens(extra, special_tokens=True)
    # Reasoning tags are ordinary added tokens: `skip_special_tokens=True` must keep them in decoded text.
    tokenizer.add_tokens(REASONING_TOKENS, special_tokens=False)
    tokenizer.model_max_length = 32768
    tokenizer.padding_side = "left" if family == "internvl" else "right"
    return tokenizer


def _image_processor(family: str):
    if family == "internvl":
        from transformers import GotOcr2ImageProcessorPil

        return GotOcr2ImageProcessorPil(
            size={"height": 56, "width": 56},
            crop_to_patches=False,
            min_patches=1,
            max_patches=2,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
    from transformers import Qwen2VLImageProcessorPil

    if family == "qwen3_vl":
        # Qwen3-VL ships Qwen2-VL's image processor with 16-pixel patches and mean = std = 0.5 (its hub
        # preprocessor_config.json); transformers has no Qwen3-VL image processor class of its own
        return Qwen2VLImageProcessorPil(
            size={
                "shortest_edge": QWEN3_VL_IMAGE_PIXELS["min_pixels"],
                "longest_edge": QWEN3_VL_IMAGE_PIXELS["max_pixels"],
            },
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": IMAGE_PIXELS["min_pixels"], "longest_edge": IMAGE_PIXELS["max_pixels"]},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )


def _model_config(family: str, tokenizer, size: str = "tiny"):
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.get_vocab() if t.startswith("<")}
    vocab_size = len(tokenizer)
    base = SMALL_TEXT if size == "small" else TEXT
    text = dict(
        base,
        vocab_size=vocab_size,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    if family == "internvl":
        from transformers import InternVLConfig

        return InternVLConfig(
            vision_config=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=[56, 56],
                patch_size=[14, 14],
                use_mean_pooling=False,
            ),
            text_config=dict(text, model_type="qwen2", rope_theta=1e6),
            image_token_id=ids["<IMG_CONTEXT>"],
            image_seq_length=4,
            downsample_ratio=0.5,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            tie_word_embeddings=False,
        )
    if family == "qwen3_vl":
        return _qwen3_vl_config(text, _tokens_of(ids), size)
    half = base["hidden_size"] // base["num_attention_heads"] // 2  # mrope_section sums to head_dim / 2
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [half // 4, 3 * half // 8, 3 * half // 8]}
    tokens = _tokens_of(ids)
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = dict(
            depth=2,
            embed_dim=32,
            hidden_size=base["hidden_size"],
            num_heads=2,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        return Qwen2VLConfig(
            text_config=dict(text, rope_parameters=rope), vision_config=vision, tie_word_embeddings=False, **tokens
        )
    from transformers import Qwen2_5_VLConfig

    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        out_hidden_size=base["hidden_size"],
        num_heads=2,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=56,
        fullatt_block_indexes=[1],
    )
    if size == "small":
        vision.update(SMALL_VISION)
    return Qwen2_5_VLConfig(
        text_config=dict(text, rope_parameters=rope), vision_config=vision, tie_word_embeddings=False, **tokens
    )


def _tokens_of(ids: dict[str, int]) -> dict[str, int]:
    return dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def _qwen3_vl_config(text: dict, tokens: dict, size: str):
    """Qwen3-VL at tiny sizes with what sets it apart kept: explicit head_dim, interleaved M-RoPE, 16-pixel patches,
    learned position embeddings interpolated to the grid, and DeepStack (features of vision layers 0 and 1 added to
    the first two language layers)."""
    from transformers import Qwen3VLConfig

    head_dim = text["hidden_size"] // text["num_attention_heads"]
    half = head_dim // 2
    hw = half * 20 // 64  # Qwen3-VL-*'s [24, 20, 20] of 64, scaled; interleaving gives T the remainder
    rope = {
        "rope_type": "default",
        "rope_theta": 5e6,
        "mrope_section": [half - 2 * hw, hw, hw],
        "mrope_interleaved": True,
    }
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        num_position_embeddings=64,  # an 8x8 grid of learned positions, bilinearly resized to each image's grid
        deepstack_visual_indexes=[0, 1],
    )
    if size == "small":
        vision.update(SMALL_VISION)
    return Qwen3VLConfig(
        text_config=dict(text, head_dim=head_dim, rope_parameters=rope),
        vision_config=vision,
        tie_word_embeddings=False,
        **tokens,
    )


def build_tiny_model(family: str, out: str | Path, seed: int = 0, overwrite: bool = True, size: str = "tiny") -> Path:
    """Write a tiny random-init model of `family` to `out` (atomically) and return the path; `size="small"` for
    GPU kernels (64-dimensional attention heads; Qwen2.5-VL and Qwen3-VL)."""
    import torch
    from transformers import GenerationConfig

    if family not in FAMILIES:
        raise Vr1Error(f"unknown family '{family}'; choose one of {sorted(FAMILIES)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise Vr1Error(f"{out} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    fam = FAMILIES[family]
    tokenizer = build_tokenizer(family, seed)
    tokenizer.chat_template = CHAT_TEMPLATES[family]
    config = _model_config(family, tokenizer, size)
    torch.manual_seed(seed)
    model = fam.model_class(config).eval()
    gen = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.generation_config = gen
    processor = fam.processor_class(
        _image_processor(family),
        tokenizer,
        chat_template=tokenizer.chat_template,
        **({"image_seq_length": config.image_seq_length} if family == "internvl" else {}),
    )
    with atomic_path(out) as tmp:
        save_model_folder(model, processor, tmp)
    return out


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over every file's name and bytes: equal digests mean byte-identical folders."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
