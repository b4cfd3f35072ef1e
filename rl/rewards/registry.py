"""Rewards by name, presets of weighted terms, user rewards from `file.py:function`, and the scorer.

A reward is `fn(response: str, info: Mapping) -> float`. `score()` wraps every call so the result is always a
finite float in [0, 1], whatever the function or the input does (exceptions, NaN, non-string input).

A user reward may also return a mapping: `{"score": the reward, <component>: number, …}`; its components are
reported beside the built-in ones as `<function name>/<component>` (metrics only, never summed into the reward).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipeline.grading.answers import VERDICTS, expression_pair
from pipeline.grading.blocks import answer_block
from pipeline.grading.mathverify import default_pool
from rl.rewards.accuracy import accuracy_reward, hfrrf_from, hfrrf_reward
from rl.rewards.detection import (
    box_format_reward,
    boxes_in_answer,
    det_confidence_reward,
    det_iou_reward,
    giou_reward,
    ovd_map,
    ovd_redundancy,
    ovd_reward,
    rec_iou_reward,
)
from rl.rewards.format import format_reward
from rl.rewards.shaping import length_penalty, repetition_penalty

RewardFn = Callable[[str, Mapping], float]

REWARDS: dict[str, RewardFn] = {
    "format": lambda r, info: format_reward(r),
    "accuracy": accuracy_reward,
    "hfrrf": hfrrf_reward,
    "box_format": box_format_reward,
    "rec_iou": rec_iou_reward,
    "giou": giou_reward,
    "ovd": ovd_reward,
    "ovd_map": ovd_map,
    "ovd_redundancy": ovd_redundancy,
    "det_iou": det_iou_reward,
    "det_confidence": det_confidence_reward,
    "length_penalty": length_penalty,
    "repetition_penalty": repetition_penalty,
}

# Rewards defined from other components: computed from the values already known for this response.
DERIVED: dict[str, Callable[[Callable[[str], float]], float]] = {
    "hfrrf": lambda get: hfrrf_from(get("format"), get("accuracy")),
    # VLM-R1's OVD reward; its two factors are also logged on their own
    "ovd": lambda get: get("ovd_redundancy") * get("ovd_map"),
}

# What each answer type's main metric is (logged as `accuracy` next to `format`).
PRIMARY = {**{t: "accuracy" for t in VERDICTS}, "bbox": "rec_iou", "boxes": "ovd"}

# Metrics that fit the task, reported by `score` beside the reward (never summed into it): for REC the IoU and
# Acc@0.5 (a hit is IoU > 0.5, as VLM-R1's test_rec_r1.py counts it), for OVD and detection the mAP and the
# redundancy factor, for both the number of boxes in the answer. Same keys for every sample of a type.
TASK_METRICS: dict[str, dict[str, Callable]] = {
    "bbox": {
        "iou": lambda get, r, info: get("rec_iou"),
        "acc_at_50": lambda get, r, info: float(get("rec_iou") > 0.5),
        "boxes_per_answer": lambda get, r, info: boxes_in_answer(r, info),
    },
    "boxes": {
        "map": lambda get, r, info: get("ovd_map"),
        "redundancy": lambda get, r, info: get("ovd_redundancy"),
        "boxes_per_answer": lambda get, r, info: boxes_in_answer(r, info),
    },
}
TASK_METRIC_NAMES = tuple(dict.fromkeys(k for metrics in TASK_METRICS.values() for k in metrics))

# Weighted terms; the weighted sum is clipped to [0, 1]. Two-term presets scale VLM-R1's and Visual-RFT's
# summed rewards (format + accuracy, format + IoU + confidence) into [0, 1].
# VLM-R1's format reward for REC and OVD checks the answer's box layout too (box_format); Visual-RFT's checks only
# the tags (format).
PRESETS: dict[str, dict[str, float]] = {
    "hfrrf": {"hfrrf": 1.0},
    "vlm_r1_rec": {"box_format": 0.5, "rec_iou": 0.5},
    "vlm_r1_ovd": {"box_format": 0.5, "ovd": 0.5},
    "visual_rft_det": {"format": 1 / 3, "det_iou": 1 / 3, "det_confidence": 1 / 3},
    "visual_rft_cls": {"format": 0.5, "accuracy": 0.5},
    "visual_rft_grounding": {"format": 0.5, "giou": 0.5},
}
DEFAULT_PRESET = {**{t: "hfrrf" for t in VERDICTS}, "bbox": "vlm_r1_rec", "boxes": "vlm_r1_ovd"}

# The answer types a built-in reward can score; any other type gets 0 from it whatever the response. Rewards not
# listed (format, the shaping penalties, user rewards) read no gold answer or decide for themselves.
SCORES_ANSWER_TYPES: dict[str, frozenset[str]] = {
    **{name: frozenset(VERDICTS) for name in ("accuracy", "hfrrf")},
    **{name: frozenset({"bbox"}) for name in ("rec_iou", "giou")},
    **{name: frozenset({"boxes"}) for name in ("ovd", "ovd_map", "ovd_redundancy", "det_iou", "det_confidence")},
}

_USER: dict[str, RewardFn] = {}


def load_user_reward(ref: str) -> RewardFn:
    """`path/to/file.py:function` -> the function (loaded once per process)."""
    if ref in _USER:
        return _USER[ref]
    path, _, name = ref.rpartition(":")
    if not path or not name:
        raise ValueError(f"user reward '{ref}' must look like path/to/file.py:function")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"user reward file not found: {file}")
    mod_name = "vr1_user_reward_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"{file} has no function '{name}'")
    _USER[ref] = fn
    return fn


def is_user_reward(name: str) -> bool:
    return ":" in name and name.rpartition(":")[0].endswith(".py")


def unscorable_terms(terms: Mapping[str, float], answer_type: str) -> list[str]:
    """The built-in terms of `terms` that cannot score an `answer_type` answer (always 0 on it)."""
    return [name for name in terms if name in SCORES_ANSWER_TYPES and answer_type not in SCORES_ANSWER_TYPES[name]]


def resolve(name: str) -> RewardFn:
    if name in REWARDS:
        return REWARDS[name]
    if is_user_reward(name):
        return load_user_reward(name)
    close = difflib.get_close_matches(name, list(REWARDS), n=1)
    raise ValueError(
        f"unknown reward '{name}'"
        + (f"; did you mean '{close[0]}'?" if close else "")
        + f"; known: {sorted(REWARDS)} or path/to/file.py:function"
    )


_PRESET_CACHE: dict[tuple[str | None, str | None], dict[str, float]] = {}


def per_answer_type(terms) -> bool:
    """{answer type: preset or reward name} (each sample of a mixed set gets its own type's reward), as opposed
    to {reward: weight}."""
    return isinstance(terms, Mapping) and bool(terms) and all(isinstance(v, str) for v in terms.values())


def resolve_terms(terms: Mapping[str, float] | str | None, answer_type: str | None) -> dict[str, float]:
    """A preset name, an explicit {reward: weight} mapping, {answer type: preset} (types left out, or "auto",
    get their default), or None for the answer type's default preset. Every name is resolved here so a typo fails
    at start-up, not at step 3,000."""
    if per_answer_type(terms):
        chosen = terms.get(answer_type or "", "auto")
        return resolve_terms(None if chosen == "auto" else chosen, answer_type)
    if terms is None or isinstance(terms, str):
        key = (terms, answer_type if terms is None else None)
        if key not in _PRESET_CACHE:
            _PRESET_CACHE[key] = _resolve_terms(terms, answer_type)
        return _PRESET_CACHE[key]
    return _resolve_terms(terms, answer_type)


def _resolve_terms(terms, answer_type) -> dict[str, float]:
    if terms is None:
        terms = DEFAULT_PRESET.get(answer_type or "", "hfrrf")
    if isinstance(terms, str):
        if terms in PRESETS:
            terms = PRESETS[terms]
        elif terms in REWARDS or is_user_reward(terms):  # one reward on its own, weight 1
            terms = {terms: 1.0}
        else:
            close = difflib.get_close_matches(terms, [*PRESETS, *REWARDS], n=1)
            raise ValueError(
                f"unknown reward '{terms}'"
                + (f" (did you mean '{close[0]}'?)" if close else "")
                + f"; known presets: {sorted(PRESETS)}, rewards: {sorted(REWARDS)}, or path/to/file.py:function"
            )
    for name in terms:
        resolve(name)
    return {k: float(v) for k, v in terms.items()}


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _call(fn: RewardFn, response: str, info: Mapping) -> tuple[float, dict[str, float]]:
    """(the reward clipped to [0, 1], the components a mapping result reports); any failure scores 0."""
    try:
        raw = fn(response, info)
        components = {}
        if isinstance(raw, Mapping):
            finite = {str(k): _finite(v) for k, v in raw.items() if k != "score"}
            components = {k: v for k, v in finite.items() if v is not None}
            raw = raw.get("score", 0.0)
        value = float(raw)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - math-verify's TimeoutException is a BaseException; any failure = 0
        return 0.0, {}
    if not math.isfinite(value):
        return 0.0, components
    return min(1.0, max(0.0, value)), components


def _metric(metric: Callable, get: Callable[[str], float], response: str, info: Mapping) -> float:
    try:
        value = float(metric(get, response, info))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - a metric never stops training
        return 0.0
    return value if math.isfinite(value) else 0.0


def score(response: str, info: Mapping, terms: Mapping[str, float] | str | None = None) -> dict[str, float]:
    """{"score": clipped weighted sum, "format": …, "accuracy": …, <term>: …, <task metric>: …}.

    `accuracy` is the answer type's primary metric (IoU for bbox, mAP for boxes), logged beside `format` even
    when the trained reward is their product, so "format learned, accuracy flat" is visible. The reward terms are
    in [0, 1]; the task metrics (`TASK_METRICS`) and a user reward's components are reported as they are.
    """
    if not isinstance(response, str):
        response = response.decode("utf-8", "replace") if isinstance(response, bytes) else ""
    answer_type = info.get("answer_type")
    resolved = resolve_terms(terms, answer_type)
    values: dict[str, float] = {}
    components: dict[str, float] = {}

    def get(name: str) -> float:  # each component once per response
        if name not in values:
            if name in DERIVED:
                values[name] = DERIVED[name](get)
            else:
                values[name], extra = _call(resolve(name), response, info)
                prefix = name.rpartition(":")[2]
                components.update((f"{prefix}/{k}", v) for k, v in extra.items())
        return values[name]

    total = sum(weight * get(name) for name, weight in resolved.items())
    out = {
        "score": min(1.0, max(0.0, total)),
        "format": get("format"),
        "accuracy": get(PRIMARY.get(answer_type, "accuracy")),
    }
    out.update((name, values[name]) for name in resolved)
    out.update(
        (name, _metric(metric, get, response, info)) for name, metric in TASK_METRICS.get(answer_type, {}).items()
    )
    out.update(components)
    return out


def score_batch(
    responses: Sequence[str], infos: Sequence[Mapping], terms: Mapping[str, float] | str | None = None
) -> list[dict[str, float]]:
    """`score` over a batch; the expression comparisons that need sympy are first verified in parallel across
    the worker pool, after which each item's own check is a cache hit."""
    pairs = []
    for response, info in zip(responses, infos, strict=True):
        if info.get("answer_type") == "expression" and isinstance(response, str):
            pred = answer_block(response)
            decided = None if pred is None else expression_pair(pred, str(info["ground_truth"]))
            if isinstance(decided, tuple):
                pairs.append(decided)
    if pairs:
        default_pool().verify_many(pairs)
    return [score(r, i, terms) for r, i in zip(responses, infos, strict=True)]
