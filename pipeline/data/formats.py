"""Converters from each published record layout to a `Sample` (layouts: ../shared/reference/formats.md).

A converter takes one raw record (a dict) and a `ConvertContext` and returns a Sample whose `images` may still
hold embedded image cells (`{"bytes":…, "path":…}` or PIL images); `pipeline.data.manifest` resolves and checks
them. Converters raise `FieldError(field, message)`; the reader adds file and line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.data.detection_sources import DETECTION_CONVERTERS
from pipeline.data.schema import ANSWER_TYPES, IMAGE_PLACEHOLDER, Sample, strip_image_placeholders
from pipeline.errors import FieldError
from pipeline.grading.blocks import answer_block, final_answer
from pipeline.grading.boxes import BoxParseError, dumps_boxes, parse_bbox, parse_boxes
from pipeline.grading.choices import extract_choices, gold_letter
from pipeline.grading.normalize import clean_answer


class SkipRecord(Exception):
    """A record the published layout itself says to skip (e.g. LLaVA-CoT rows without an image)."""


@dataclass
class ConvertContext:
    source: str
    answer_type: str = "auto"  # a fixed type for the whole manifest, or "auto" to infer per sample
    fields: dict[str, str] = field(default_factory=dict)  # canonical name -> column name in this file
    coord_frame: str | None = None

    def column(self, name: str, *defaults: str) -> tuple[str, ...]:
        return (self.fields[name],) if name in self.fields else defaults


# ---------------------------------------------------------------- small helpers shared by converters


def _get(rec: dict, names: tuple[str, ...], kind: type | tuple[type, ...], required: bool = True):
    for name in names:
        if name in rec and rec[name] is not None:
            value = rec[name]
            if not isinstance(value, kind):
                want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise FieldError(name, f"expected {want}, got {type(value).__name__}")
            return value
    if required:
        raise FieldError(names[0], "missing" if len(names) == 1 else f"missing (looked for {', '.join(names)})")
    return None


def _as_image_list(value: Any, name: str) -> list:
    """`images` may be a string, a list, an image cell {bytes, path} or a PIL image."""
    if value is None:
        return []
    if isinstance(value, (str, dict)) or hasattr(value, "save"):
        return [value]
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if not (isinstance(v, (str, dict)) or hasattr(v, "save")):
                raise FieldError(f"{name}[{i}]", f"expected a path or an image cell, got {type(v).__name__}")
        return list(value)
    raise FieldError(name, f"expected a path or a list of paths, got {type(value).__name__}")


def record_id(rec: dict, ctx: ConvertContext, names: tuple[str, ...] = ("id",)) -> str:
    """The record's own id, or a content hash of the record (stable across reorderings of the file)."""
    for name in names:
        v = rec.get(name)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise FieldError(name, f"expected a string or an integer id, got {type(v).__name__}")
            return str(v)
    blob = json.dumps(rec, sort_keys=True, default=repr, ensure_ascii=False).encode()
    return f"{ctx.source}-{hashlib.sha1(blob).hexdigest()[:16]}"


def _check_placeholders(text: str, n_images: int, name: str) -> None:
    n = text.count(IMAGE_PLACEHOLDER)
    if n != n_images:
        raise FieldError(name, f"has {n} '<image>' placeholder(s) but the record has {n_images} image(s)")


_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?\s*%?\s*$", re.I)
_LATEX = re.compile(r"\\[a-zA-Z]+|[\^_{}]|\d\s*/\s*\d")


def infer_answer_type(answer: str, choices: list[str] | None) -> str:
    if choices and gold_letter(answer):
        return "choice"
    if _NUMBER.match(answer):
        return "number"
    if _LATEX.search(answer):
        return "expression"
    return "text"


def finish(
    ctx: ConvertContext,
    *,
    id: str,
    question: str,
    answer: str,
    images: list,
    choices: list[str] | None = None,
    answer_type: str | None = None,
    meta: dict | None = None,
) -> Sample:
    """Build the Sample: settle the answer type, normalise choice letters and box answers."""
    meta = dict(meta or {})
    question, answer = question.strip(), answer.strip()
    if choices is None:
        choices = extract_choices(question)
    atype = answer_type or ctx.answer_type
    if atype == "auto":
        atype = infer_answer_type(answer, choices)
    if atype not in ANSWER_TYPES:
        raise FieldError("answer_type", f"'{atype}' is not one of {', '.join(ANSWER_TYPES)}")
    if atype == "choice":
        letter = gold_letter(answer)
        if letter is None and choices and answer in choices:  # MathVista stores the choice text
            letter = chr(ord("A") + choices.index(answer))
        if letter is None:
            raise FieldError("answer", f"choice answer must be one option letter, got {answer[:60]!r}")
        answer = letter
    elif atype in ("bbox", "boxes"):
        try:
            answer = dumps_boxes(parse_bbox(answer) if atype == "bbox" else parse_boxes(answer))
        except BoxParseError as e:
            raise FieldError("answer", f"{atype} answer does not parse: {e}") from None
        if ctx.coord_frame and "coord_frame" not in meta:
            meta["coord_frame"] = ctx.coord_frame
    return Sample(
        id=id,
        source=ctx.source,
        question=question,
        answer=answer,
        answer_type=atype,
        images=images,
        choices=choices,
        meta=meta,
    )


def _turns(conv: Any, name: str) -> list[tuple[str, str]]:
    """[(role, text)] from ShareGPT (`from`/`value`) or OpenAI (`role`/`content`) turns; roles normalised."""
    if not isinstance(conv, list) or not conv:
        raise FieldError(name, "expected a non-empty list of turns")
    roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
    out = []
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise FieldError(f"{name}[{i}]", f"expected an object, got {type(turn).__name__}")
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if role not in roles:
            raise FieldError(f"{name}[{i}].from", f"unknown role {role!r}")
        if not isinstance(text, str):
            raise FieldError(f"{name}[{i}].value", f"expected a string, got {type(text).__name__}")
        out.append((roles[role], text))
    return out


def _first_exchange(turns: list[tuple[str, str]], name: str) -> tuple[str, str, list]:
    body = [t for t in turns if t[0] != "system"]
    if len(body) < 2 or body[0][0] != "user" or body[1][0] != "assistant":
        raise FieldError(name, "expected a user turn followed by an assistant turn")
    return body[0][1], body[1][1], body[2:]


# ---------------------------------------------------------------- the layouts


def convert_vr1(rec: dict, ctx: ConvertContext) -> Sample:
    """vr1's own JSONL (what `vr1 demo-data` writes): one `Sample` per line."""
    for name in ("id", "question", "answer", "answer_type"):
        _get(rec, (name,), (str, int) if name == "id" else str)
    images = _as_image_list(rec.get("images"), "images")
    choices = rec.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        raise FieldError("choices", "expected a list of strings")
    meta = rec.get("meta") or {}
    if not isinstance(meta, dict):
        raise FieldError("meta", f"expected an object, got {type(meta).__name__}")
    source = rec.get("source") or ctx.source
    return finish(
        ConvertContext(source, ctx.answer_type, ctx.fields, ctx.coord_frame),
        id=str(rec["id"]),
        question=rec["question"],
        answer=rec["answer"],
        images=images,
        choices=choices,
        answer_type=rec["answer_type"],
        meta=meta,
    )


_CONCLUSION = re.compile(r"<CONCLUSION>(.*?)</CONCLUSION>", re.S)


def convert_llava_cot(rec: dict, ctx: ConvertContext) -> Sample:
    """LLaVA-CoT-100k: ground truth is the `<CONCLUSION>` of the first gpt turn."""
    image = rec.get("image")
    if image is None:
        raise SkipRecord("no image (the official loader skips such records)")
    if not isinstance(image, str):
        raise FieldError("image", f"expected a string path, got {type(image).__name__}")
    question, response, rest = _first_exchange(_turns(rec.get("conversations"), "conversations"), "conversations")
    m = _CONCLUSION.search(response)
    if not m:
        raise FieldError("conversations[1].value", "no <CONCLUSION>…</CONCLUSION> in the gpt turn")
    answer = m.group(1).strip()
    question = strip_image_placeholders(question)
    choices = extract_choices(question)
    if choices and gold_letter(answer):
        answer = gold_letter(answer)
    meta = {"reference_response": response}
    if rest:
        meta["extra_turns"] = [list(t) for t in rest]
    return finish(
        ctx, id=record_id(rec, ctx), question=question, answer=answer, images=[image], choices=choices, meta=meta
    )


_MULBERRY_FINAL = "### The final answer is:"


def convert_mulberry(rec: dict, ctx: ConvertContext) -> Sample:
    """Mulberry-SFT: ground truth follows the LAST `### The final answer is:` (reflection samples repeat it)."""
    images = _as_image_list(_get(rec, ("images", "image"), (str, list)), "images")
    question, response, _ = _first_exchange(_turns(rec.get("messages"), "messages"), "messages")
    _check_placeholders(question, len(images), "messages[0].content")
    if _MULBERRY_FINAL not in response:
        raise FieldError("messages[1].content", f"no '{_MULBERRY_FINAL}' in the assistant turn")
    answer = response.rsplit(_MULBERRY_FINAL, 1)[1].strip()
    question = strip_image_placeholders(question)
    choices = extract_choices(question)
    if choices and gold_letter(answer):
        answer = gold_letter(answer)
    return finish(
        ctx,
        id=record_id(rec, ctx),
        question=question,
        answer=answer,
        images=images,
        choices=choices,
        meta={"reference_response": response},
    )


def answer_from_response(response: str) -> str | None:
    """The final answer of a `<think>…</think><answer>…</answer>` or `…</think>\\n\\nFinal Answer:X` response,
    with the two spellings published cold-start sets use for plain answers undone ("option B", "12.")."""
    text = final_answer(response)
    if text is None:
        return None
    opt = re.fullmatch(r"option\s+([A-H])\.?", text, re.I)
    return opt.group(1).upper() if opt else text.rstrip(".") if re.fullmatch(r"[-+]?\d+(\.\d+)?\.", text) else text


def convert_sharegpt(rec: dict, ctx: ConvertContext) -> Sample:
    """LLaMA-Factory ShareGPT, both Vision-R1-cold layouts; vr1's own files carry the exact Sample in `vr1`."""
    conv_name = "conversations" if "conversations" in rec else "messages"
    turns = _turns(rec.get(conv_name), conv_name)
    question, response, _ = _first_exchange(turns, conv_name)
    images = _as_image_list(rec.get("images", rec.get("image")), "images")
    _check_placeholders(question, len(images), f"{conv_name}[0].value")
    if "vr1" in rec:
        exact = rec["vr1"]
        if not isinstance(exact, dict):
            raise FieldError("vr1", "expected an object")
        return convert_vr1({**exact, "id": rec.get("id", exact.get("id")), "images": images}, ctx)
    answer = answer_from_response(response)
    if not answer:
        raise FieldError(f"{conv_name}[1].value", "no <answer>…</answer> or 'Final Answer:' in the assistant turn")
    return finish(
        ctx,
        id=record_id(rec, ctx),
        question=strip_image_placeholders(question),
        answer=answer,
        images=images,
        # every turn as written (placeholders, whitespace, system and later turns): what LLaMA-Factory trains on
        meta={"reference_response": response, "conversation": [list(t) for t in turns]},
    )


VLM_R1_METHODS = {
    "mcq": "choice",
    "yes_no": "text",
    "math": "expression",
    "map": "boxes",
    "od_ap": "boxes",
    "od_ap50": "boxes",
    "odLength": "boxes",
    "all_match": "text",
}


def convert_vlm_r1(rec: dict, ctx: ConvertContext) -> Sample:
    """VLM-R1 JSONL: first two conversation turns; `accu_reward_method` may set the answer type per record."""
    images = _as_image_list(rec.get("image"), "image")
    conv = rec.get("conversations")
    question, answer, _ = _first_exchange(_turns(conv, "conversations")[:2], "conversations")
    answer = answer_block(answer) or answer  # mcq and multi-image records write the gold as <answer>B</answer>
    method = rec.get("accu_reward_method")
    meta = {"accu_reward_method": method} if method else {}
    atype = VLM_R1_METHODS.get(method) if method else None
    if not atype and ctx.answer_type == "auto":
        atype = "bbox" if re.fullmatch(r"\s*\[[^\[\]]*\]\s*", answer) else None
    frame = ctx.coord_frame or "abs_original"
    sub = ConvertContext(ctx.source, ctx.answer_type, ctx.fields, frame)
    return finish(
        sub,
        id=record_id(rec, ctx),
        question=strip_image_placeholders(question),
        answer=answer,
        images=images,
        answer_type=atype,
        meta=meta,
    )


def convert_visual_rft(rec: dict, ctx: ConvertContext) -> Sample:
    """Visual-RFT: `image_path` (JSON) or `image` (HF), `problem`, `solution` = `<answer>…</answer>`."""
    images = _as_image_list(_get(rec, ("image_path", "image"), (str, list, dict, object)), "image_path")
    problem = _get(rec, ctx.column("question", "problem"), str)
    solution = _get(rec, ctx.column("answer", "solution"), str)
    answer = answer_block(solution) or solution.strip()
    atype = None
    if ctx.answer_type == "auto":
        atype = "boxes" if ("Position" in answer or answer.lower().startswith("no object")) else "label"
    sub = ConvertContext(ctx.source, ctx.answer_type, ctx.fields, ctx.coord_frame or "grid1000")
    return finish(
        sub,
        id=record_id(rec, ctx),
        question=strip_image_placeholders(problem),
        answer=answer,
        images=images,
        answer_type=atype,
    )


_LISA_IMAGE = re.compile(r"<img>(.*?)</img>", re.S)
_LISA_INSTRUCTION = "Output the bounding box in the image corresponding to the instruction:"


def convert_visual_rft_lisa(rec: dict, ctx: ConvertContext) -> Sample:
    """Visual-RFT's reasoning-grounding set (lisa_evaluation/gen_sft.py writes it): `conversations` [user: `<img>PATH
    </img>\n Output the bounding box … instruction: X`, assistant: `(x1,y1),(x2,y2)`], boxes on the 0-1000 grid.
    The question is the instruction X alone: the run's prompt template (`visual_rft_grounding`) puts the published
    sentence around it."""
    question, answer, _ = _first_exchange(_turns(rec.get("conversations"), "conversations"), "conversations")
    found = _LISA_IMAGE.search(question)
    if not found:
        raise FieldError("conversations[0].value", "no <img>PATH</img> in the user turn")
    text = _LISA_IMAGE.sub("", question).strip()
    text = text.split(_LISA_INSTRUCTION, 1)[1].strip() if _LISA_INSTRUCTION in text else text
    sub = ConvertContext(ctx.source, ctx.answer_type, ctx.fields, ctx.coord_frame or "grid1000")
    return finish(
        sub,
        id=record_id(rec, ctx),
        question=text,
        answer=answer,
        images=[found.group(1).strip()],
        answer_type="bbox",
        meta={"pred_frame": "grid1000"},  # the prompt asks for the same grid the gold is on
    )


def convert_easyr1(rec: dict, ctx: ConvertContext) -> Sample:
    """EasyR1 / geometry3k: `problem` with one `<image>` per image, `answer`, `images`, optional `choices`."""
    problem = _get(rec, ctx.column("question", "problem"), str)
    answer = _get(rec, ctx.column("answer", "answer"), (str, int, float))
    images = _as_image_list(rec.get(ctx.column("images", "images")[0]), "images")
    _check_placeholders(problem, len(images), "problem")
    choices = rec.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        raise FieldError("choices", "expected a list of strings")
    return finish(
        ctx,
        id=record_id(rec, ctx),
        question=strip_image_placeholders(problem),
        answer=str(answer),
        images=images,
        choices=choices or None,
    )


def convert_verl(rec: dict, ctx: ConvertContext) -> Sample:
    """verl multimodal parquet; vr1's own files keep the exact Sample fields in `extra_info`."""
    prompt = rec.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        raise FieldError("prompt", "expected a non-empty list of {role, content}")
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[0].get("content"), str):
        raise FieldError("prompt", "no user message with string content")
    question = users[0]["content"]
    images = _as_image_list(rec.get("images"), "images")
    _check_placeholders(question, len(images), "prompt[user].content")
    rm = rec.get("reward_model")
    if not isinstance(rm, dict) or rm.get("ground_truth") is None:
        raise FieldError("reward_model.ground_truth", "missing")
    extra = rec.get("extra_info") or {}
    if not isinstance(extra, dict):
        raise FieldError("extra_info", "expected a struct")
    choices = json.loads(extra["choices"]) if isinstance(extra.get("choices"), str) else extra.get("choices")
    meta = json.loads(extra["meta"]) if isinstance(extra.get("meta"), str) else {}
    source = rec.get("data_source") or ctx.source
    sub = ConvertContext(source, ctx.answer_type, ctx.fields, ctx.coord_frame)
    sample_id = extra.get("id") or record_id(rec, ctx)
    question_text = extra.get("question") if isinstance(extra.get("question"), str) else question
    return finish(
        sub,
        id=str(sample_id),
        question=strip_image_placeholders(question_text),
        answer=str(rm["ground_truth"]),
        images=images,
        choices=choices,
        answer_type=extra.get("answer_type"),
        meta=meta,
    )


def convert_lmm_r1(rec: dict, ctx: ConvertContext) -> Sample:
    """LMM-R1 / MM-EUREKA (OpenRLHF style): `message` is a JSON-encoded OpenAI message list whose user content
    holds `{"type": "image", "image": "file:///…"}` and text items; `answer` is often `$\\boxed{3}$`."""
    raw = _get(rec, ctx.column("message", "message", "messages"), (str, list))
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise FieldError("message", f"not a JSON message list: {e.msg} at column {e.colno}") from None
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise FieldError("message", "expected a list of {role, content} messages")
    users = [m for m in raw if m.get("role") == "user"]
    if not users:
        raise FieldError("message", "no user message")
    content = users[0].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise FieldError("message[user].content", f"expected a string or a list, got {type(content).__name__}")
    images, texts = [], []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image", "image_url"):
            ref = part.get("image") if kind == "image" else (part.get("image_url") or {}).get("url")
            if not isinstance(ref, str) or not ref:
                raise FieldError(f"message[user].content[{i}]", "image item without a path")
            images.append(ref)
        elif kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise FieldError(f"message[user].content[{i}]", f"unknown content item {str(part)[:60]}")
    answer = str(_get(rec, ctx.column("answer", "answer"), (str, int, float)))
    answer = clean_answer(answer) or answer  # `$\\boxed{3}$` -> `3`
    question = strip_image_placeholders("\n".join(texts))
    return finish(ctx, id=record_id(rec, ctx), question=question, answer=answer, images=images)


def convert_columns(rec: dict, ctx: ConvertContext) -> Sample:
    """Any table with question/answer/images columns (HF datasets on disk, R1-V parquet…); `fields` maps names.
    vr1's own HF datasets carry every Sample field as a column and are restored exactly."""
    if {"id", "source", "question", "answer", "answer_type"} <= rec.keys():
        meta = json.loads(rec["meta"]) if isinstance(rec.get("meta"), str) else rec.get("meta")
        images = [dict(cell) for cell in rec.get("images") or []]
        paths = rec.get("image_paths")
        if paths is not None:
            if len(paths) != len(images):
                raise FieldError("image_paths", f"{len(paths)} paths for {len(images)} images")
            for cell, rel in zip(images, paths, strict=True):
                cell["path"] = rel
        fields = ("id", "source", "question", "answer", "answer_type", "choices")
        return convert_vr1({**{k: rec.get(k) for k in fields}, "meta": meta, "images": images}, ctx)
    question = _get(rec, ctx.column("question", "question", "problem", "query"), str)
    answer = _get(rec, ctx.column("answer", "answer", "solution", "ground_truth"), (str, int, float))
    image_value = next((rec[c] for c in ctx.column("images", "images", "image", "image_path") if c in rec), None)
    images = _as_image_list(image_value, ctx.column("images", "images")[0])
    if IMAGE_PLACEHOLDER in question:
        _check_placeholders(question, len(images), ctx.column("question", "question")[0])
    answer = str(answer)
    return finish(
        ctx,
        id=record_id(rec, ctx),
        question=strip_image_placeholders(question),
        answer=answer_block(answer) or answer,
        images=images,
        choices=rec.get("choices"),
    )


# ---------------------------------------------------------------- Vision-R1's RL sources (We-Math, MathVision,
# PolyMATH, SceMQA; Geometry3K is `easyr1`). Layouts and their citations: data_manifests/<source>.yaml.

_NUMBERED_IMAGE = re.compile(r"<image\d+>")


def _image_cell(rec: dict, names: tuple[str, ...]) -> list:
    """The first non-empty of `names` as an image list (a path, an image cell, or a PIL image)."""
    for name in names:
        if rec.get(name):
            return _as_image_list(rec[name], name)
    raise FieldError(names[0], "missing" if len(names) == 1 else f"missing (looked for {', '.join(names)})")


def _labelled_options(text: str, name: str) -> tuple[list[str], list[str]]:
    """Options written on one line with their labels: `(1) 6 (2) 8`, `(A) x (B) y`, `1. a 2. b`, `(a) p (b) q`,
    `A. x;B. y`. Returns (labels as written, texts); the labels must run 1, 2, 3… or A, B, C… (any case)."""
    for first in ("1", "A", "a"):
        for left, right in (("(", ")"), ("", "."), ("", ")")):
            marks, pos = [], 0
            for i in range(8):
                label = f"{left}{chr(ord(first) + i)}{right}"
                m = re.compile(r"(?:^|(?<=[\s;,]))" + re.escape(label) + r"(?=\s|$)").search(text, pos)
                if not m:
                    break
                marks.append(m)
                pos = m.end()
            if len(marks) >= 2 and marks[0].start() == len(text) - len(text.lstrip()):
                ends = [m.start() for m in marks[1:]] + [len(text)]
                texts = [text[m.end() : end].strip().rstrip(";").strip() for m, end in zip(marks, ends, strict=True)]
                return [m.group(0) for m in marks], texts
    raise FieldError(name, f"no labelled options (1)/(A)/1./A. found in {text[:80]!r}")


def convert_mathvision(rec: dict, ctx: ConvertContext) -> Sample:
    """MathVision (mathllm/MATH-V data/test.jsonl; MathLLMs/MathVision parquet): `id`, `question` with `<imageN>`
    marks, `options` (list: empty for free-form; ["A".."E"] when the options are drawn in the image), `answer`
    (an option letter when there are options), `image` (a path) or `decoded_image` (the HF image cell)."""
    question = _get(rec, ("question",), str)
    answer = str(_get(rec, ("answer",), (str, int, float)))
    options = rec.get("options") or []
    if not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
        raise FieldError("options", "expected a list of strings")
    images = _image_cell(rec, ("decoded_image", "image"))
    question = re.sub(r"\n{2,}", "\n", _NUMBERED_IMAGE.sub("", question)).strip()
    meta = {k: rec[k] for k in ("level", "subject", "solution") if rec.get(k) is not None}
    return finish(
        ctx,
        id=record_id(rec, ctx),
        question=question,
        answer=answer,
        images=images,
        choices=options or None,
        answer_type="choice" if options else None,
        meta=meta,
    )


def convert_we_math(rec: dict, ctx: ConvertContext) -> Sample:
    """We-Math testmini (We-Math/We-Math testmini.json = GitHub data/testmini.json): `ID`, `question`, `option` as
    one string `A. …;B. …; E. No correct answer`, `answer` (a letter), `image_path` (relative to the unzipped
    testmini.zip; an image cell in the HF parquet), plus `knowledge concept`, `key`, `question number`…"""
    question = _get(rec, ("question",), str)
    answer = _get(rec, ("answer",), str)
    _, choices = _labelled_options(_get(rec, ("option",), str), "option")
    images = _image_cell(rec, ("image_path", "image"))
    meta = {k: rec[k] for k in ("knowledge concept", "key", "question number") if rec.get(k) is not None}
    return finish(
        ctx,
        id=record_id(rec, ctx, ("ID", "id")),
        question=question,
        answer=answer,
        images=images,
        choices=choices,
        answer_type="choice",
        meta=meta,
    )


def _polymath_id(rec: dict, ctx: ConvertContext) -> str:
    """The published file name (`<paper uuid>_q<n>.png`): `file_name` in metadata.csv, the image cell's path once
    loaded with `datasets`; the same question keeps its id in testmini and test."""
    if isinstance(rec.get("file_name"), str):
        return rec["file_name"].rsplit("/", 1)[-1]
    cell = rec.get("image")
    if isinstance(cell, dict) and isinstance(cell.get("path"), str) and cell["path"]:
        return cell["path"].replace("\\", "/").rsplit("/", 1)[-1]
    return record_id(rec, ctx)


def convert_polymath(rec: dict, ctx: ConvertContext) -> Sample:
    """PolyMATH (him1411/polymath, an HF imagefolder: <split>/metadata.csv + PNGs): `file_name` (`image` once
    loaded), `question_text` ("None" when the question is only in the image), `answer_option` (`(1) 6 (2) 8 …`,
    `(A) …`, `1. …`, `(a) …`; empty texts when the options are drawn), `final_answer` (the option's label: 2 or B),
    `category`, `final_answer_range`, `contains_diagram`, `diagram_description`. The image shows the whole
    question. Gold answers become option letters; an option without text reads as its printed label."""
    question = rec.get("question_text")
    if question is not None and not isinstance(question, str):
        raise FieldError("question_text", f"expected a string, got {type(question).__name__}")
    question = (question or "").strip()  # pandas reads the published "None" as a missing value
    labels, texts = _labelled_options(_get(rec, ("answer_option",), str), "answer_option")
    final = str(_get(rec, ("final_answer",), (str, int))).strip().strip("()").strip(".")
    if final.isdigit():
        index = int(final) - 1
    elif len(final) == 1 and final.isalpha():
        index = ord(final.upper()) - ord("A")
    else:
        raise FieldError("final_answer", f"expected an option label (1-4 or A-D), got {final!r}")
    if not 0 <= index < len(labels):
        raise FieldError("final_answer", f"label {final!r} is not among the options {labels}")
    images = _image_cell(rec, ("image", "file_name"))
    meta = {k: rec[k] for k in ("category", "final_answer_range", "contains_diagram") if rec.get(k) is not None}
    if question in ("", "None"):
        question = "Solve the problem shown in the image."
        meta["question_in_image"] = True
    return finish(
        ctx,
        id=_polymath_id(rec, ctx),
        question=question,
        answer=chr(ord("A") + index),
        images=images,
        choices=[t or label for label, t in zip(labels, texts, strict=True)],
        answer_type="choice",
        meta=meta,
    )


def _braced(text: str, command: str) -> list[str]:
    """The arguments of every `\\command{…}` in `text`, nested braces kept."""
    out, start = [], 0
    while (i := text.find("\\" + command + "{", start)) >= 0:
        open_at = i + len(command) + 1
        depth, end = 0, len(text)
        for k in range(open_at, len(text)):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                end = k
                break
        out.append(text[open_at + 1 : end].strip())
        start = end + 1
    return out


def convert_scemqa(rec: dict, ctx: ConvertContext) -> Sample:
    """SceMQA (github.com/SceMQA/SceMQA) after `pipeline.data.rl_prep.flatten_scemqa`: the published records
    (`Question`, `Answer (final answer highlighted)`, `ImagePath` without extension) plus `id`, `subject`, `format`
    and `image` (the resolved file). Multiple choice: the answer is a letter, the options are lines of the
    question. Free response: the gold is the first `\\answer{…}`; later ones are kept as accepted alternatives."""
    question = _get(rec, ("Question",), str)
    raw = _get(rec, ("Answer (final answer highlighted)",), str)
    images = _image_cell(rec, ("image", "ImagePath"))
    meta = {k: rec[k] for k in ("subject", "format") if rec.get(k)}
    answers = _braced(raw, "answer")
    if answers:
        meta["reference_solution"] = raw
        if len(answers) > 1:
            meta["alternatives"] = answers[1:]
        return finish(ctx, id=record_id(rec, ctx), question=question, answer=answers[0], images=images, meta=meta)
    choices = extract_choices(question)
    return finish(
        ctx,
        id=record_id(rec, ctx),
        question=question,
        answer=raw.strip(),
        images=images,
        choices=choices,
        answer_type="choice",
        meta=meta,
    )


CONVERTERS: dict[str, Callable[[dict, ConvertContext], Sample]] = {
    "vr1": convert_vr1,
    "llava_cot": convert_llava_cot,
    "mulberry": convert_mulberry,
    "sharegpt": convert_sharegpt,
    "vlm_r1": convert_vlm_r1,
    "visual_rft": convert_visual_rft,
    "visual_rft_lisa": convert_visual_rft_lisa,
    "easyr1": convert_easyr1,
    "verl_parquet": convert_verl,
    "lmm_r1": convert_lmm_r1,
    "columns": convert_columns,
    "mathvision": convert_mathvision,
    "we_math": convert_we_math,
    "polymath": convert_polymath,
    "scemqa": convert_scemqa,
    # COCO / LVIS / RefCOCO (expanded into samples by pipeline.data.detection_sources) and VLM-R1's REC JSON
    **DETECTION_CONVERTERS,
}
