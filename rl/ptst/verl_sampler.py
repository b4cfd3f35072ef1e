"""verl 0.9.1 replay-buffer sampler that adds vr1's per-step training metrics; loaded by verl from this file
(`trainer.v1.sampler.custom_sampler.path/name`).

Why a sampler: verl's V1 trainer (what `main_ppo` runs by default) keeps each response's reward dict
(`compute_score`'s format and accuracy) in TransferQueue as `extra_fields["reward_extra_info"]`, but builds its
training metrics without it (only validation reads it), and its rollout dump keeps only `uid`. The trainer does merge
the metrics a sampler's `sample()` returns into the step's logged metrics (`trainer_base.py`, `_step_once`), so the
sampler is the one place that sees the sampled batch and can report:

- `vr1/format_rate`, `vr1/accuracy`, and `vr1/<metric>` for the task metrics (REC IoU and Acc@0.5, OVD mAP and
  redundancy, boxes per answer) and a user reward's components: the mean of the reward's own values over the step's
  responses that report them (never recomputed from text);
- `vr1/response_clip_ratio`: the share of responses that reached the configured `max_response_length` (verl's
  `response_length/clip_ratio` in V1 compares with the longest response of the step instead, so it is never 0).

Names avoid "max"/"min": verl's metrics aggregator reduces such names by max/min instead of averaging.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:  # verl imports this file by path inside a Ray actor
    sys.path.insert(0, _ROOT)

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer  # noqa: E402

COMPONENTS = {"format": "vr1/format_rate", "accuracy": "vr1/accuracy"}
CLIP_RATIO = "vr1/response_clip_ratio"


def reward_components(extra_fields: Iterable) -> list[Mapping]:
    """Each response's reward dict, from TransferQueue's `extra_fields` cells (a dict, or a wrapper holding it in
    `.data`, as verl's own DAPO filter reads them)."""
    infos = []
    for value in extra_fields:
        fields = getattr(value, "data", value)
        info = fields.get("reward_extra_info") if isinstance(fields, Mapping) else None
        infos.append(info if isinstance(info, Mapping) else {})
    return infos


def step_metrics(infos: Sequence[Mapping], response_lengths: Sequence[int], max_response_length: int | None) -> dict:
    """The mean of every reward component over the responses that report it (NaN: not this response's task),
    as `vr1/<name>`; format and accuracy under their established names."""
    out = {}
    keys = dict.fromkeys(k for i in infos for k in i if k != "score")
    for key in keys:
        values = [float(i[key]) for i in infos if _number(i.get(key))]
        if values:
            out[COMPONENTS.get(key, f"vr1/{key}")] = sum(values) / len(values)
    if max_response_length and response_lengths:
        out[CLIP_RATIO] = sum(n >= max_response_length for n in response_lengths) / len(response_lengths)
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RewardComponentsReplayBuffer(ReplayBuffer):
    """verl's synchronous replay buffer, unchanged, plus the metrics above for training batches."""

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id == "train" and batch.keys:
            import transfer_queue as tq

            data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
            lengths = [int(t.get("response_len", 0)) for t in (batch.tags or [])]
            limit = (self.sampler_kwargs or {}).get("max_response_length")
            metrics.update(step_metrics(reward_components(list(data["extra_fields"])), lengths, limit))
        return batch, metrics
