"""Batches for VLM SFT: padded, or padding-free (the batch's samples end to end in one row, not one pad token).

Padding-free follows transformers 5's packed-sequence contract: no attention mask, and position ids that restart at
each sample; for the Qwen-VL families those are the model's own 3-D M-RoPE positions computed per sample, with the
text positions as a fourth leading row, which the model reads to find the samples. flash_attention_2/3 turn such
positions into varlen `cu_seqlens` by themselves. Under sdpa, transformers would instead materialise a [1, 1, T, T]
block-diagonal mask and compute attention between every pair of samples only to mask it away, through the masked
kernel (GQA heads copied): `use_packed_attention` registers `PACKED_SDPA`, which runs unmasked causal sdpa on each
sample's span. A padded batch (it carries an attention mask) goes through plain sdpa under either name.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from rl.sft.data import encode

PACKED_SDPA = "vr1_packed_sdpa"


def span_lengths(positions: torch.Tensor) -> list[int]:
    """Lengths of the samples in one packed row: a sample starts wherever the positions do not go on by one, the rule
    of transformers' packed masks (flash-attention's varlen path starts one at each 0, as the collator's do too)."""
    starts = torch.nonzero(positions[1:] - positions[:-1] != 1).flatten() + 1
    bounds = [0, *starts.tolist(), positions.shape[0]]
    return [b - a for a, b in pairwise(bounds)]


def packed_sdpa_forward(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, position_ids=None, **kwargs
):
    """sdpa, except on an unmasked causal self-attention over packed rows: causal attention within each sample."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if attention_mask is not None or position_ids is None or not causal or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    window = kwargs.get("sliding_window")
    rows = []
    for b in range(query.shape[0]):
        lengths = span_lengths(position_ids[b])
        if window is not None and max(lengths) > window:
            raise ValueError(f"{PACKED_SDPA} has no sliding-window attention; use sdpa or flash_attention_2")
        splits = (t[b : b + 1].split(lengths, dim=2) for t in (query, key, value))
        rows.append(
            torch.cat(
                [
                    sdpa_attention_forward(module, q, k, v, None, dropout=dropout, scaling=scaling, is_causal=True)[0]
                    for q, k, v in zip(*splits, strict=True)
                ],
                dim=1,
            )
        )
    return torch.cat(rows), None


def packed_sdpa_mask(*, attention_mask=None, q_length=None, kv_length=None, q_offset=0, kv_offset=0, **kwargs):
    """No mask where there is no padding and no cache (packed_sdpa_forward keeps attention causal and within each
    sample); sdpa's own mask everywhere else (padded batches, generation)."""
    if (
        attention_mask is None
        and q_length == kv_length
        and isinstance(q_offset, int)
        and q_offset == kv_offset == 0
        and kwargs.get("local_size") is None
    ):
        return None
    return sdpa_mask(
        attention_mask=attention_mask,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        **kwargs,
    )


AttentionInterface.register(PACKED_SDPA, packed_sdpa_forward)
AttentionMaskInterface.register(PACKED_SDPA, packed_sdpa_mask)


def use_packed_attention(model) -> str:
    """Give the language model PACKED_SDPA where it runs sdpa (flash-attention already works per sample from the
    positions; eager keeps transformers' block-diagonal mask). Returns the language model's attention now."""
    config = model.config
    text = config.get_text_config()
    if text._attn_implementation != "sdpa" or "sliding_attention" in (getattr(text, "layer_types", None) or ()):
        return text._attn_implementation
    key = next((k for k in config.sub_configs if getattr(config, k, None) is text), None)
    model.set_attn_implementation({key: PACKED_SDPA} if key else PACKED_SDPA)
    return text._attn_implementation


@dataclass
class VLMCollator:
    processor: Any
    packing: bool = False  # padding-free: every sample of the batch in one row
    rope_index: Any = None  # the model's `get_rope_index` (Qwen-VL families), needed for padding-free

    def __call__(self, rows: list[dict]) -> dict:
        return self.collate([encode(self.processor, r) for r in rows])

    def collate(self, encs: list[dict]) -> dict:
        """The batch of already encoded samples (`rl.sft.data.encode`)."""
        batch = self._packed(encs) if self.packing else self._padded(encs)
        # images follow the order of their tokens in the flattened batch, which is the samples' order either way
        for key in ("pixel_values", "image_grid_thw"):
            parts = [e[key] for e in encs if key in e]
            if parts:
                batch[key] = torch.cat(parts)
        return batch

    def _padded(self, encs: list[dict]) -> dict:
        pad = self.processor.tokenizer.pad_token_id
        n = max(len(e["input_ids"]) for e in encs)

        def stack(key, fill):
            return torch.stack(
                [torch.cat([e[key], torch.full((n - len(e[key]),), fill, dtype=e[key].dtype)]) for e in encs]
            )

        batch = {"input_ids": stack("input_ids", pad), "labels": stack("labels", -100)}
        batch["attention_mask"] = torch.stack(
            [
                torch.cat(
                    [
                        torch.ones(len(e["input_ids"]), dtype=torch.long),
                        torch.zeros(n - len(e["input_ids"]), dtype=torch.long),
                    ]
                )
                for e in encs
            ]
        )
        if "mm_token_type_ids" in encs[0]:
            batch["mm_token_type_ids"] = stack("mm_token_type_ids", 0)
        return batch

    def _packed(self, encs: list[dict]) -> dict:
        qwen = "mm_token_type_ids" in encs[0]
        if qwen and self.rope_index is None:
            raise ValueError("padding-free Qwen-VL batches need the model's get_rope_index")
        labels = []
        for e in encs:
            # the model shifts labels inside the row: a sample's first token would be the previous sample's target
            lab = e["labels"].clone()
            lab[0] = -100
            labels.append(lab)
        text_pos = torch.cat([torch.arange(len(e["input_ids"])) for e in encs])[None]
        # use_cache=False: transformers takes restarting positions for separate samples only without a KV cache
        batch = {
            "input_ids": torch.cat([e["input_ids"] for e in encs])[None],
            "labels": torch.cat(labels)[None],
            "use_cache": False,
        }
        if qwen:
            batch["mm_token_type_ids"] = torch.cat([e["mm_token_type_ids"] for e in encs])[None]
            rope = torch.cat([self._rope(e) for e in encs], dim=-1)[:, None]
            batch["position_ids"] = torch.cat([text_pos[None], rope], dim=0)  # [4, 1, T]
        else:
            batch["position_ids"] = text_pos
        return batch

    def _rope(self, e: dict):
        if "image_grid_thw" not in e:  # text only: M-RoPE's three rows are the text positions
            return torch.arange(len(e["input_ids"])).expand(3, -1)
        ids = e["input_ids"][None]
        pos, _ = self.rope_index(
            ids,
            e["mm_token_type_ids"][None],
            image_grid_thw=e.get("image_grid_thw"),
            attention_mask=torch.ones_like(ids),
        )
        return pos[:, 0]  # [3, len]
