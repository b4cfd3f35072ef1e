"""verl adapter: point `reward.custom_reward_function.path` at this file and `.name` at `compute_score`.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` from a thread pool for each
response. `extra_info` holds the reward columns vr1's parquet writer put there (`pipeline.data.reward_info`:
answer type, choices, coordinate frame, image sizes, pixel budget); `extra_info["reward"]` or the config's
`reward.custom_reward_function.reward_kwargs.reward` may name a preset or give {reward: weight}.
The result is a dict with a fixed set of keys (verl logs each one as a metric).
"""

from __future__ import annotations

import math
import os
import sys

# verl imports this file by path; make the project importable from it.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pipeline.data.reward_info import info_from_columns  # noqa: E402
from rl.rewards.registry import TASK_METRICS, score  # noqa: E402


def compute_score(
    data_source=None, solution_str="", ground_truth="", extra_info=None, reward=None, metric_types=None, **_
) -> dict:
    """{"score", "format", "accuracy", <task metrics>, <user reward components>}: the configured reward (default:
    the answer type's preset, HFRRF for reasoning answers), its two always-logged components in [0, 1], and the
    task metrics of each answer type in `metric_types` (NaN on a response of another type: verl collates the
    keys of a batch, so every response of a run reports the same ones)."""
    info = info_from_columns(ground_truth, extra_info)
    result = score(solution_str, info, reward or info.pop("reward", None))
    out = {"score": result["score"], "format": result["format"], "accuracy": result["accuracy"]}
    for answer_type in metric_types or ():
        out.update((name, result.get(name, math.nan)) for name in TASK_METRICS.get(answer_type, {}))
    out.update((k, v) for k, v in result.items() if "/" in k)  # a user reward's own components
    return out
