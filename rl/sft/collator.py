"""Batches for VLM SFT: padded, or packed (several whole samples per row, nearly no pad tokens).

Packing places the batch's samples first-fit-decreasing into rows as long as its longest sample, so it never
computes more than padding would, and keeps attention within each sample the way transformers 5 does for packed
input: no attention mask, position ids that restart at each sample. For the Qwen-VL families those are the
model's own 3-D M-RoPE positions computed per sample (`get_rope_index`), with the text positions as a fourth
leading row, which the model reads to build the block-diagonal mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rl.sft.data import encode


def pack_layout(lengths: list[int]) -> list[list[int]]:
    """Rows of sample indices: first-fit decreasing into rows of the longest sample's length (no sample split)."""
    capacity = max(lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


@dataclass
class VLMCollator:
    processor: Any
    packing: bool = False
    rope_index: Any = None  # the model's `get_rope_index` (Qwen-VL families), needed for packing

    def __call__(self, rows: list[dict]) -> dict:
        encs = [encode(self.processor, r) for r in rows]
        if self.packing:
            return self._packed(encs)
        batch = self._padded(encs)
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
        layout = pack_layout([len(e["input_ids"]) for e in encs])
        width = max(len(e["input_ids"]) for e in encs)
        pad = self.processor.tokenizer.pad_token_id
        qwen = "mm_token_type_ids" in encs[0]
        if qwen and self.rope_index is None:
            raise ValueError("packed Qwen-VL batches need the model's get_rope_index")
        ids, labels, mm, text_pos, rope = [], [], [], [], []
        for row in layout:
            parts = [encs[i] for i in row]
            fill = width - sum(len(e["input_ids"]) for e in parts)
            # the row's tail is one more "sample" of pad tokens: its positions restart, it attends only to itself
            ids.append(torch.cat([e["input_ids"] for e in parts] + [torch.full((fill,), pad)]))
            labels.append(torch.cat([e["labels"] for e in parts] + [torch.full((fill,), -100)]))
            text_pos.append(torch.cat([torch.arange(len(e["input_ids"])) for e in parts] + [torch.arange(fill)]))
            if qwen:
                mm.append(torch.cat([e["mm_token_type_ids"] for e in parts] + [torch.zeros(fill, dtype=torch.long)]))
                rope.append(
                    torch.cat([self._rope(e) for e in parts] + [torch.arange(fill).view(1, -1).expand(3, -1)], dim=-1)
                )
        # use_cache=False: transformers builds the per-sample (block-diagonal) mask only without a KV cache
        batch = {"input_ids": torch.stack(ids), "labels": torch.stack(labels), "use_cache": False}
        if qwen:
            batch["mm_token_type_ids"] = torch.stack(mm)
            batch["position_ids"] = torch.cat([torch.stack(text_pos)[None], torch.stack(rope, dim=1)], dim=0)
        else:
            batch["position_ids"] = torch.stack(text_pos)
        # images must follow the order of their tokens in the flattened batch
        order = [i for row in layout for i in row]
        for key in ("pixel_values", "image_grid_thw"):
            parts = [encs[i][key] for i in order if key in encs[i]]
            if parts:
                batch[key] = torch.cat(parts)
        return batch

    def _rope(self, e: dict):
        ids = e["input_ids"][None]
        pos, _ = self.rope_index(
            ids,
            e["mm_token_type_ids"][None],
            image_grid_thw=e.get("image_grid_thw"),
            attention_mask=torch.ones_like(ids),
        )
        return pos[:, 0]  # [3, len]
