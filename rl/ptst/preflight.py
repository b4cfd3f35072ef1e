"""What `vr1 ptst` checks before it starts anything (a Ray cluster, a vLLM engine, a TRL trainer): the reward can
score the data it will see, the start model is somewhere a stage can load it from. Each refusal says what to
change; nothing here fails later inside a worker."""

from __future__ import annotations

import math
import numbers
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from pipeline.data.images import resolve_image
from pipeline.data.reward_info import info_from_columns, reward_columns, reward_info
from pipeline.data.schema import Sample
from pipeline.errors import Vr1Error
from pipeline.grading.blocks import format_response
from rl.ptst.config import RLData
from rl.rewards.registry import (
    DEFAULT_PRESET,
    PRESETS,
    is_user_reward,
    resolve,
    resolve_terms,
    unscorable_terms,
)

# what the Hugging Face hub accepts as a repository id (`org/name`)
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# the files a processor and its validation need; the weights are fetched by the trainer itself
PROCESSOR_FILES = ["*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


def _by_answer_type(items: list[tuple[Sample, Path]]) -> dict[str, list[tuple[Sample, Path]]]:
    groups: dict[str, list[tuple[Sample, Path]]] = defaultdict(list)
    for s, root in items:
        groups[s.answer_type].append((s, root))
    return dict(groups)


def reward_input(s: Sample, root: Path, data: RLData, pred_frame: str | None = None) -> dict:
    """The reward input exactly as both engines hand it to a reward (written as columns, read back)."""
    info = reward_info(
        s,
        lambda rel: resolve_image(root, rel, "images"),
        min_pixels=data.min_pixels,
        max_pixels=data.max_pixels,
        pred_frame=pred_frame,
    )
    return info_from_columns(s.answer, reward_columns(info))


def check_reward(
    data: RLData, items: list[tuple[Sample, Path]], pred_frame: str | None = None
) -> dict[str, dict[str, float]]:
    """The terms that score each answer type in `items` under `data.reward`; refuses an unknown name (naming the
    closest known one), a preset that scores some answer type 0 whatever the policy writes (hfrrf on boxes), and a
    user reward (`path/to/file.py:function`) that does not load or cannot score one sample of each type."""
    groups = _by_answer_type(items)
    plan: dict[str, dict[str, float]] = {}
    for answer_type, members in sorted(groups.items()):
        try:
            terms = resolve_terms(None if data.reward == "auto" else data.reward, answer_type)
        except Exception as e:  # an unknown name, a user file that is missing or does not import
            raise Vr1Error(f"data.reward={data.reward}: {e}") from None
        dead = unscorable_terms(terms, answer_type)
        if dead:
            fits = sorted(p for p, t in PRESETS.items() if not unscorable_terms(t, answer_type))
            raise Vr1Error(
                f"data.reward={data.reward} cannot score the {len(members)} '{answer_type}' item(s) in the RL data "
                f"(e.g. {members[0][0].source}/{members[0][0].id}): {', '.join(dead)} give(s) 0 on them whatever "
                f"the policy writes. Use data.reward=auto (it picks {DEFAULT_PRESET.get(answer_type)} for "
                f"{answer_type}) or a preset that scores it: {fits}"
            )
        for name in terms:
            if is_user_reward(name):
                _try_user_reward(name, *members[0], data, pred_frame)
        plan[answer_type] = terms
    return plan


def _try_user_reward(name: str, s: Sample, root: Path, data: RLData, pred_frame: str | None) -> None:
    info = reward_input(s, root, data, pred_frame)
    response = format_response("Checking the reward before training.", s.answer)
    try:
        value = resolve(name)(response, info)
    except Exception as e:
        raise Vr1Error(
            f"reward {name} failed on {s.source}/{s.id} ({s.answer_type}) before training: "
            f"{type(e).__name__}: {e}. It is called as fn(response: str, info: dict) with info keys {sorted(info)}"
        ) from None
    main = value.get("score") if isinstance(value, Mapping) else value
    if isinstance(main, bool) or not isinstance(main, numbers.Real) or not math.isfinite(float(main)):
        raise Vr1Error(
            f"reward {name} returned {value!r:.200} for {s.source}/{s.id}; a reward returns a finite number "
            '(vr1 clips it to [0, 1]) or a dict {"score": number, <component>: number, ...}'
        )
    if isinstance(value, Mapping):
        bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, numbers.Real)]
        if bad:
            raise Vr1Error(f"reward {name} returned non-numeric component(s) {bad} for {s.source}/{s.id}")


# the processors verl 0.9.1's `hf_processor` binds (verl/utils/tokenizer/tokenizer.py); any other it drops silently
# (returns None, and its dataset then fails on the first image)
VERL_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


def check_verl_family(model_folder: Path) -> None:
    from pipeline.models.load import family_of

    family = family_of(model_folder).name
    if family not in VERL_FAMILIES:
        raise Vr1Error(
            f"{model_folder} is {family}: verl 0.9.1 has no multimodal processor for it (its hf_processor knows "
            "Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4V, Mllama and Gemma4 only) and would fail on the first image; "
            "train it with engine=trl"
        )


def describe_plan(plan: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{t}: " + " + ".join(f"{w:g}*{n}" for n, w in terms.items()) for t, terms in plan.items())


def start_reference(ref: str) -> tuple[str, Path]:
    """(what the trainer loads, a local folder holding the processor files) for `model.start`: a local HF folder,
    or a hub id such as Qwen/Qwen2.5-VL-7B-Instruct (its processor files are fetched here for validation; the
    trainer's workers fetch the weights themselves, into the same Hugging Face cache)."""
    path = Path(ref)
    if (path / "config.json").is_file():
        return str(path.resolve()), path.resolve()
    if path.exists():
        raise Vr1Error(f"model.start={ref} is a local path without a config.json: not a Hugging Face model folder")
    if not HUB_ID.match(ref):
        raise Vr1Error(
            f"model.start={ref} is neither a local model folder (none there) nor a hub id like "
            "Qwen/Qwen2.5-VL-7B-Instruct; run `make sft` or point model.start at an SFT output or a hub id"
        )
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(ref, allow_patterns=PROCESSOR_FILES))
    except Exception as e:
        raise Vr1Error(
            f"model.start={ref} looks like a hub id but could not be fetched ({type(e).__name__}: {str(e)[:200]}). "
            f"Download it (`huggingface-cli download {ref} --local-dir DIR`) and set model.start=DIR"
        ) from None
    if not (local / "config.json").is_file():
        raise Vr1Error(f"model.start={ref}: the hub repository has no config.json; is it a model?")
    return ref, local
