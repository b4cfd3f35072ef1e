"""The three generation steps of modality bridging, each in two halves: build the request from a prompt file and
the sample (plus earlier outputs), and read the fields out of the completion."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

from coldstart.store import content_hash
from pipeline.data.images import resolve_image
from pipeline.data.schema import Sample
from pipeline.errors import ConfigError
from pipeline.generation import ChatRequest, Completion
from pipeline.grading.blocks import final_answer
from pipeline.grading.choices import format_choices, lists_choices

STEP_NAMES = ("pseudo_cot", "description", "reasoning")
ROLE = {"pseudo_cot": "vlm", "description": "vlm", "reasoning": "reasoner"}
FIELDS = {
    "pseudo_cot": {"question", "choices_block", "answer"},
    "description": {"question", "choices_block", "pseudo_cot"},
    "reasoning": {"question", "choices_block", "description", "answer_hint"},
}
ANSWER_HINT = {
    "choice": " (only the option's letter)",
    "number": " (only the number)",
    "expression": " (only the exact expression, in LaTeX)",
    "text": "",
    "label": "",
}


@dataclass(frozen=True)
class Prompt:
    path: Path
    text: str
    hash: str

    @classmethod
    def load(cls, path: str | Path, step: str) -> Prompt:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"prompt file for step '{step}' not found: {path}")
        text = path.read_text(encoding="utf-8")
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        unknown = used - FIELDS[step]
        if unknown:
            raise ConfigError(
                f"{path}: unknown placeholder(s) {sorted(unknown)}; step '{step}' offers {sorted(FIELDS[step])}"
            )
        return cls(path, text, content_hash(text)[:12])


def choices_block(sample: Sample) -> str:
    """The options, unless the question already lists them (most sources embed them in the question)."""
    if not sample.choices or lists_choices(sample.question):
        return ""
    return "Options:\n" + format_choices(sample.choices) + "\n"


@dataclass
class Step:
    name: str
    prompt: Prompt

    @property
    def role(self) -> str:
        return ROLE[self.name]

    def build(self, sample: Sample, prior: dict[str, dict], image_root: Path) -> ChatRequest:
        values = {
            "question": sample.question,
            "choices_block": choices_block(sample),
            "answer": sample.answer,
            "pseudo_cot": prior.get("pseudo_cot", {}).get("text", ""),
            "description": prior.get("description", {}).get("text", ""),
            "answer_hint": ANSWER_HINT.get(sample.answer_type, ""),
        }
        text = self.prompt.text.format_map({k: values[k] for k in FIELDS[self.name]})
        images = [resolve_image(image_root, rel, "images") for rel in sample.images] if self.role == "vlm" else []
        # a later step goes first in a server's queue: a sample near the end frees its place in the pipeline
        # sooner, and the reasoner is fed from the start instead of after the VLM's backlog
        priority = STEP_NAMES.index(self.name)
        return ChatRequest(text=text, images=images, key=f"{sample.id}:{self.name}", priority=priority)

    def request_hash(self, request: ChatRequest, settings: dict) -> str:
        """What the answer to `request` depends on besides the model: the prompt text, the images, and the
        backend's request settings (pixel budget, image detail, sampling): change one and the request is asked
        again; a rerun with none changed reuses the stored answer."""
        return content_hash(request.text, *[p.name for p in request.images], json.dumps(settings, sort_keys=True))

    def parse(self, completion: Completion) -> dict:
        """The step's output fields. Generation steps keep the text; the reasoning step also splits off the
        thinking and the final answer (None when the reasoner gave none)."""
        out = {"text": completion.text.strip(), "finish_reason": completion.finish_reason}
        if self.name == "reasoning":
            out["thinking"] = (completion.reasoning or "").strip() or None
            out["final_answer"] = final_answer(completion.text)
        return out


def load_steps(prompt_paths: dict[str, str]) -> list[Step]:
    return [Step(name, Prompt.load(prompt_paths[name], name)) for name in STEP_NAMES]
