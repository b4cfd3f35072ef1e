"""TRL adapter: reward functions with the `reward_funcs` signature `fn(prompts, completions, **columns)`.

Columns come from the TRL dataset: `answer` (or `solution` / `ground_truth`), `answer_type`, and optionally
`choices`, `image_sizes`, `coord_frame`, `pred_frame`, `min_pixels`, `max_pixels` (`pipeline.data.reward_info`
writes them). Pass `[format_reward, accuracy_reward]` with `reward_weights` to train on their sum, or
`[hfrrf_reward]` for Vision-R1's hard reward; TRL logs each function under its `__name__`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.data.reward_info import info_from_columns
from rl.rewards.registry import resolve_terms, score_batch

GOLD_COLUMNS = ("answer", "solution", "ground_truth")
NOT_INFO = {"prompt", "prompts", "image", "images", "completion_ids", "messages"}  # TRL's own per-sample columns
# the reward terms' own names are not logged again: `score` is the reward itself, the terms are in the preset
NOT_METRICS = {"score"}


def completion_text(completion) -> str:
    """A completion as text: TRL passes strings, or (conversational data) a list of message dicts whose content
    is a string or a list of {type: text} parts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""
    return ""


def _infos(n: int, columns: Mapping) -> list[dict]:
    gold_key = next((k for k in GOLD_COLUMNS if k in columns), None)
    if gold_key is None:
        raise ValueError(f"the TRL dataset needs one of the columns {GOLD_COLUMNS} with the ground truth")
    keys = [k for k, v in columns.items() if isinstance(v, list) and len(v) == n and k not in NOT_INFO]
    return [
        info_from_columns(columns[gold_key][i], {k: columns[k][i] for k in keys if k != gold_key}) for i in range(n)
    ]


def make_trl_reward(
    terms: Mapping[str, float] | str | None = None,
    name: str | None = None,
    key: str = "score",
    log_components: bool = False,
):
    """A TRL reward function computing `score(...)[key]` for each completion (weights as in `score`).

    With `log_components`, the same scoring also reports through TRL's `log_metric` the batch mean of the format
    and accuracy, of the task metrics (REC IoU and Acc@0.5, OVD mAP and redundancy, boxes per answer) and of a user
    reward's components, each over the completions that report it (`rewards/<name>/mean`): one scoring per
    completion gives the training reward and every metric."""
    if terms is not None:
        resolve_terms(terms, None)  # fail at start-up on a typo

    def reward(prompts=None, completions=None, log_metric=None, **columns) -> list[float]:
        texts = [completion_text(c) for c in completions]
        results = score_batch(texts, _infos(len(texts), columns), terms)
        if log_components and log_metric is not None and results:
            for name in dict.fromkeys(k for r in results for k in r if k not in NOT_METRICS):
                values = [r[name] for r in results if name in r]
                log_metric(f"rewards/{name}/mean", sum(values) / len(values))
        return [r[key] for r in results]

    reward.__name__ = name or (terms if isinstance(terms, str) else "vr1_reward")
    return reward


format_reward = make_trl_reward(None, "format", key="format")
accuracy_reward = make_trl_reward(None, "accuracy", key="accuracy")
hfrrf_reward = make_trl_reward("hfrrf", "hfrrf")
