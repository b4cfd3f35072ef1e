"""LLaMA-Factory's supervised encoding for template `qwen2_vl` (0.9.5, the recipe Vision-R1's cold start was trained
with), reproduced token for token: `tests/fixtures/llamafactory/` holds ids and labels made by LLaMA-Factory's own
data path (`scripts/llamafactory_fixtures.py`) and a test compares them with these.

What LLaMA-Factory does, and this module with it:
- the conversation as written: `<image>` is replaced where it stands by `<|vision_start|>`, one `<|image_pad|>` per
  visual token and `<|vision_end|>`; text is kept verbatim (no stripping); every assistant turn is trained;
- the system turn: the template's default system prompt; a ShareGPT `system` turn is read only when the dataset's
  tags name a `system_tag`, otherwise the record is dropped (`system_turns: keep | drop`);
- each message is tokenized on its own (system, then each user and assistant turn) and the pairs are cut to
  `cutoff_len` by `infer_seqlen`, turn by turn, which may cut inside the image tokens;
- images: shrunk (or grown) to `image_max_pixels` / `image_min_pixels` with LLaMA-Factory's rule (`int(side * f)`,
  f = sqrt(budget / area)), sides under 28 raised to 28, then given to the model's image processor, which applies
  its own budget and its own `smart_resize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PIL import Image

IGNORE_INDEX = -100
IMAGE_PLACEHOLDER = "<image>"
DEFAULT_SYSTEM = "You are a helpful assistant."
SYSTEM_FORMAT = "<|im_start|>system\n{content}<|im_end|>\n"
USER_FORMAT = "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
ASSISTANT_FORMAT = "{content}<|im_end|>\n"
# LLaMA-Factory's defaults (hparams ProcessorArguments): 768 * 768 and 32 * 32
IMAGE_MAX_PIXELS = 589824
IMAGE_MIN_PIXELS = 1024


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """How much of a (prompt, response) pair survives `cutoff_len`: a short response keeps all of itself and the
    prompt is cut; a short prompt keeps itself and the response is cut; otherwise both shrink in proportion."""
    if target_len * 2 < cutoff_len:
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target_len = cutoff_len - source_len
    else:
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    max_source_len = max(cutoff_len - new_target_len, 0)
    new_source_len = min(max_source_len, source_len)
    return new_source_len, new_target_len


def _scale(image: Image.Image, budget: int) -> Image.Image:
    factor = math.sqrt(budget / (image.width * image.height))
    return image.resize((int(image.width * factor), int(image.height * factor)))


def preprocess_image(image: Image.Image, max_pixels: int, min_pixels: int) -> Image.Image:
    """LLaMA-Factory's own resize before the model's image processor (mm_plugin BasePlugin + Qwen2VLPlugin)."""
    if image.width * image.height > max_pixels:
        image = _scale(image, max_pixels)
    if image.width * image.height < min_pixels:
        image = _scale(image, min_pixels)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if min(image.width, image.height) < 28:
        image = image.resize((max(image.width, 28), max(image.height, 28)))
    if image.width / image.height > 200:
        image = image.resize((image.height * 180, image.height))
    if image.height / image.width > 200:
        image = image.resize((image.width, image.width * 180))
    return image


def conversation_problem(messages: list[tuple[str, str]], n_images: int, system_turns: str) -> str | None:
    """Why LLaMA-Factory would not train this conversation (its ShareGPT converter and supervised processor),
    or None."""
    body = list(messages)
    if body and body[0][0] == "system":
        if system_turns == "drop":
            return "a system turn: LLaMA-Factory drops the record unless the dataset names a system_tag"
        body = body[1:]
    if any(role == "system" for role, _ in body):
        return "a system turn after the first message"
    roles = [role for role, _ in body]
    if not roles or len(roles) % 2 or roles != ["user", "assistant"] * (len(roles) // 2):
        return "turns do not alternate user, assistant, …, assistant"
    placeholders = sum(text.count(IMAGE_PLACEHOLDER) for _, text in body)
    if placeholders != n_images:
        return f"{placeholders} {IMAGE_PLACEHOLDER} placeholder(s) for {n_images} image(s)"
    return None


@dataclass
class Encoding:
    input_ids: list[int]
    labels: list[int]
    image_inputs: dict = field(default_factory=dict)  # pixel_values, image_grid_thw
    untruncated_length: int = 0
    image_tokens: int = 0  # what the images need
    image_tokens_kept: int = 0  # what survived the cutoff

    @property
    def truncated(self) -> int:
        return self.untruncated_length - len(self.input_ids)


def encode_conversation(
    processor,
    messages: list[tuple[str, str]],
    image_paths: list[str],
    cutoff_len: int,
    max_pixels: int = IMAGE_MAX_PIXELS,
    min_pixels: int = IMAGE_MIN_PIXELS,
) -> Encoding:
    """Ids and labels as LLaMA-Factory's SupervisedDatasetProcessor makes them. `messages` are (role, text) with
    `<image>` placeholders, an optional leading system turn; the processor keeps the model's own image budget."""
    tokenizer = processor.tokenizer
    images = [preprocess_image(Image.open(p), max_pixels, min_pixels) for p in image_paths]
    image_inputs = dict(processor.image_processor(images=images, return_tensors="pt")) if images else {}
    merge = int(processor.image_processor.merge_size) ** 2
    seqlens = [int(g.prod()) // merge for g in image_inputs.get("image_grid_thw", [])]
    system = messages[0][1] if messages and messages[0][0] == "system" else DEFAULT_SYSTEM
    body = messages[1:] if messages and messages[0][0] == "system" else messages

    pad = processor.image_token
    pending = iter(seqlens)

    def expand(text: str) -> str:
        while IMAGE_PLACEHOLDER in text:
            text = text.replace(IMAGE_PLACEHOLDER, f"<|vision_start|>{pad * next(pending)}<|vision_end|>", 1)
        return text

    def ids(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False) if text else []

    encoded = []
    for i, (role, text) in enumerate(body):
        piece = ids(SYSTEM_FORMAT.format(content=system)) if i == 0 and system else []
        fmt = USER_FORMAT if role == "user" else ASSISTANT_FORMAT
        encoded.append(piece + ids(fmt.format(content=expand(text))))
    input_ids: list[int] = []
    labels: list[int] = []
    total = 0
    for source, target in zip(encoded[0::2], encoded[1::2], strict=True):
        if total >= cutoff_len:
            break
        source_len, target_len = infer_seqlen(len(source), len(target), cutoff_len - total)
        total += source_len + target_len
        input_ids += source[:source_len] + target[:target_len]
        labels += [IGNORE_INDEX] * source_len + target[:target_len]
    pad_id = tokenizer.convert_tokens_to_ids(pad)
    return Encoding(
        input_ids=input_ids,
        labels=labels,
        image_inputs=image_inputs,
        untruncated_length=sum(len(e) for e in encoded),
        image_tokens=sum(seqlens),
        image_tokens_kept=input_ids.count(pad_id),
    )
