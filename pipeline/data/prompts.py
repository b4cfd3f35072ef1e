"""The instruction wrapped around each RL question (`data.prompt_template`): the published projects' own wording,
by name, or a user's string with a `{question}` placeholder.

Sources (read at om-ai-lab/VLM-R1 90052f4 and Liuziyu77/Visual-RFT 9486633):
- `vlm_r1_rec`, `vlm_r1_default`: `Qwen2VLModule.get_question_template` ("rec" and the default case),
  src/open-r1-multimodal/src/open_r1/vlm_modules/qwen_module.py;
- `vlm_r1_ovd`: the same function's "odLength" case (the instruction before the question);
- `visual_rft_det`: coco_evaluation/Qwen2_VL_coco_infere.py (the instruction after the per-category question,
  which the data carries: "Detect all objects belonging to the category '…'");
- `visual_rft_cls`: classification/Qwen2_VL_classification_infere.py (after the question);
- `visual_rft_grounding`: src/virft/src/open_r1/grpo_lisa.py `QUESTION_TEMPLATE` with the instruction sentence of
  lisa_evaluation/Qwen2_VL_lisa_infere.py (boxes as `(x1,y1),(x2,y2)` on the 0-1000 grid).
Vision-R1 itself adds nothing to the question (`plain`).
"""

from __future__ import annotations

_THINK_ANSWER = (
    "First output the thinking process in <think> </think> tags and then output the final answer in <answer> "
    "</answer> tags."
)
_VISUAL_RFT_TAGS = (
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "The output answer format should be as follows:\n"
)

PROMPT_TEMPLATES: dict[str, str] = {
    "plain": "{question}",
    "vlm_r1_default": "{question} " + _THINK_ANSWER,
    "vlm_r1_rec": "{question} " + _THINK_ANSWER + " Output the final answer in JSON format.",
    "vlm_r1_ovd": (
        "First thinks about the reasoning process in the mind and then provides the user with the answer. The "
        "reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
        "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>\n{question}"
    ),
    "visual_rft_det": (
        "{question}\n"
        + _VISUAL_RFT_TAGS
        + "<think> ... </think> <answer>[{{'Position': [x1, y1, x2, y2], 'Confidence': number}}, ...]</answer>\n"
        "Please strictly follow the format."
    ),
    "visual_rft_cls": (
        "{question}\n" + _VISUAL_RFT_TAGS + "<think> ... </think> <answer>species name</answer>\n"
        "Please strictly follow the format."
    ),
    "visual_rft_grounding": (
        "Output the bounding box in the image corresponding to the instruction: {question}. Output the thinking "
        'process in <think> </think> and your grouding box. Following "<think> thinking process </think>\n'
        '<answer>(x1,y1),(x2,y2)</answer>)" format.'
    ),
}


def check_template(template: str) -> str | None:
    """Why `template` cannot be used (None when it can): a known name, or a string with one `{question}`."""
    if template in PROMPT_TEMPLATES:
        return None
    if "{question}" not in template:
        return (
            f"prompt_template '{template[:60]}' is neither a known name {sorted(PROMPT_TEMPLATES)} "
            "nor a string with {question}"
        )
    try:
        template.format(question="")
    except (KeyError, IndexError, ValueError) as e:
        return f"prompt_template: only {{question}} may be a placeholder (write other braces doubled): {e}"
    return None


def render_prompt(template: str, question: str) -> str:
    return PROMPT_TEMPLATES.get(template, template).format(question=question)
