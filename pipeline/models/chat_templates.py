"""Chat templates of the supported families, as Jinja strings.

Written for this project to render the same token layout as each family's published instruct template:
ChatML turns, images as `<|vision_start|><|image_pad|><|vision_end|>` (Qwen2-VL / Qwen2.5-VL / Qwen3-VL, the
processor expands the pad) or `<IMG_CONTEXT>` (InternVL-hf, the processor expands it to `<img>…</img>`).
Qwen3-VL's instruct template writes no system turn unless the conversation has one (Qwen2-VL / Qwen2.5-VL add
"You are a helpful assistant."), and its generation prompt is a bare `<|im_start|>assistant\n` (only the Thinking
checkpoints open a `<think>` there).
Message content may be a string or a list of `{"type": "image"}` / `{"type": "text", "text": ...}` parts.
"""

from __future__ import annotations

_CHATML = r"""{%- set image_count = namespace(value=0) -%}
{%- for message in messages -%}
{%- if loop.first and message['role'] != 'system' and DEFAULT_SYSTEM -%}
{{- '<|im_start|>system\n' + DEFAULT_SYSTEM + '<|im_end|>\n' -}}
{%- endif -%}
{{- '<|im_start|>' + message['role'] + '\n' -}}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}
{%- set image_count.value = image_count.value + 1 -%}
{%- if add_vision_id -%}{{- 'Picture ' ~ image_count.value ~ ': ' -}}{%- endif -%}
{{- IMAGE -}}
{%- elif part['type'] == 'text' -%}
{{- part['text'] -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}"""


def _render(default_system: str, image: str) -> str:
    escaped = default_system.replace("'", "\\'")
    system = f"'{escaped}'" if default_system else "''"
    return "{%- set DEFAULT_SYSTEM = " + system + " -%}\n" + _CHATML.replace("{{- IMAGE -}}", "{{- '" + image + "' -}}")


QWEN_VL_TEMPLATE = _render("You are a helpful assistant.", "<|vision_start|><|image_pad|><|vision_end|>")
QWEN3_VL_TEMPLATE = _render("", "<|vision_start|><|image_pad|><|vision_end|>")
INTERNVL_TEMPLATE = _render(
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。",
    "<IMG_CONTEXT>\n",
)
