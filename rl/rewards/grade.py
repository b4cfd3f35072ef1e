"""`vr1 grade`: why did this answer get its score? One command prints what was graded, how both sides were read,
the rule that decided, and every reward component, computed by the same code the rewards and filters use."""

from __future__ import annotations

import json

from pipeline.data.reward_info import info_from_columns
from pipeline.errors import Vr1Error
from pipeline.grading.answers import grade_answer
from pipeline.grading.blocks import answer_block, split_response
from rl.rewards.registry import resolve_terms, score


def explain(
    gold: str,
    prediction: str,
    answer_type: str,
    *,
    response: bool = False,
    choices=None,
    reward: str | None = None,
    extra: dict | None = None,
) -> dict:
    """The explanation as a dict: the graded answer, both forms, the rule, the accuracy, and (for a full
    response) the format verdict and every component of the reward."""
    info = info_from_columns(gold, {"answer_type": answer_type, "choices": choices, **(extra or {})})
    out: dict = {"answer_type": answer_type, "gold": gold, "prediction": prediction}
    if response:
        graded = answer_block(prediction)
        out["format"] = (
            "well formed" if split_response(prediction) else "not exactly <think>…</think><answer>…</answer>"
        )
        out["extracted_answer"] = graded
    else:
        graded = prediction
    if answer_type in ("bbox", "boxes"):
        out["rule"] = "boxes are scored by the IoU/mAP rewards below"
    else:
        verdict = grade_answer(graded, info, explain=True) if graded is not None else None
        out.update(
            rule=verdict.rule if verdict else "no single <answer> block to grade",
            gold_form=verdict.gold_form if verdict else None,
            prediction_form=verdict.pred_form if verdict else None,
            accuracy=verdict.accuracy if verdict else 0.0,
        )
    text = prediction if response else f"<think></think><answer>{prediction}</answer>"
    terms = resolve_terms(reward, answer_type)
    out["reward"] = reward or f"default for {answer_type}"
    out["scores"] = score(text, info, terms)
    return out


def render(result: dict) -> str:
    width = max(len(k) for k in result)
    lines = []
    for key, value in result.items():
        if key == "scores":
            value = ", ".join(f"{k} {v:.4g}" for k, v in value.items())
        lines.append(f"{key.replace('_', ' '):<{width}}  {value}")
    return "\n".join(lines)


def run(args) -> int:
    try:
        extra = json.loads(args.info) if args.info else {}
    except json.JSONDecodeError as e:
        raise Vr1Error(f'--info must be a JSON object (e.g. \'{{"coord_frame": "grid1000"}}\'): {e}') from None
    try:
        result = explain(
            args.gold,
            args.prediction,
            args.type,
            response=args.response,
            choices=args.choices,
            reward=args.reward,
            extra=extra,
        )
    except ValueError as e:  # an unknown reward or preset
        raise Vr1Error(str(e)) from None
    print(json.dumps(result, ensure_ascii=False) if args.json else render(result))  # noqa: T201
    return 0
