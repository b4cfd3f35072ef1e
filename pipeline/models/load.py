"""One loader for every supported VLM folder: the tiny models we build and checkpoints laid out as on the hub.

transformers 5 insists on a video processor (which needs torchvision) inside `AutoProcessor` for the Qwen-VL and
InternVL families; we never feed video, so each family gets an image-only processor subclass whose `__init__`
has no `video_processor`. On disk the folders keep the family's own processor class name, so vLLM, verl and TRL
read them as the upstream class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.env import check_environment
from pipeline.errors import Vr1Error

check_environment()

from transformers import (  # noqa: E402  (after the torchvision check on purpose)
    AutoConfig,
    AutoTokenizer,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen3VLImageOnlyProcessor(Qwen3VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class InternVLImageOnlyProcessor(InternVLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, image_seq_length=256, chat_template=None, **kwargs):
        super().__init__(
            image_processor, tokenizer, None, image_seq_length=image_seq_length, chat_template=chat_template, **kwargs
        )


@dataclass(frozen=True)
class Family:
    name: str
    model_type: str
    model_class: type
    processor_class: type
    upstream_processor: str  # class name written into the folder, as on the hub
    # the frame of the boxes the family is trained to write (its grounding convention): Qwen2.5-VL absolute pixels
    # of its resized input, Qwen2-VL, Qwen3-VL and InternVL the 0-1000 grid; a data set's pred_frame overrides it
    box_frame: str = "grid1000"


FAMILIES = {
    "qwen2_vl": Family(
        "qwen2_vl", "qwen2_vl", Qwen2VLForConditionalGeneration, Qwen2VLImageOnlyProcessor, "Qwen2VLProcessor"
    ),
    "qwen2_5_vl": Family(
        "qwen2_5_vl",
        "qwen2_5_vl",
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLImageOnlyProcessor,
        "Qwen2_5_VLProcessor",
        box_frame="abs_resized",
    ),
    # Qwen3-VL went back from Qwen2.5-VL's absolute pixels to relative coordinates on 0-1000 (QwenLM/Qwen3-VL
    # cookbooks/2d_grounding.ipynb: "default coordinate system has been changed from the absolute coordinates used
    # in Qwen2.5-VL to relative coordinates ranging from 0 to 1000")
    "qwen3_vl": Family(
        "qwen3_vl",
        "qwen3_vl",
        Qwen3VLForConditionalGeneration,
        Qwen3VLImageOnlyProcessor,
        "Qwen3VLProcessor",
        box_frame="grid1000",
    ),
    "internvl": Family(
        "internvl", "internvl", InternVLForConditionalGeneration, InternVLImageOnlyProcessor, "InternVLProcessor"
    ),
}


def family_of(path: str | Path) -> Family:
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise Vr1Error(f"{path}: not a model folder (no config.json)")
    cfg = json.loads(cfg_file.read_text())
    model_type = cfg.get("model_type")
    for fam in FAMILIES.values():
        if fam.model_type == model_type:
            return fam
    if cfg.get("auto_map") and "internvl" in str(cfg.get("architectures", "")).lower():
        raise Vr1Error(
            f"{path}: this is the remote-code InternVL layout; use the transformers-native '-hf' checkpoint "
            "(e.g. OpenGVLab/InternVL3-8B-hf), which loads without trust_remote_code"
        )
    raise Vr1Error(f"{path}: model_type '{model_type}' is not supported; supported: {sorted(FAMILIES)}")


def load_processor(path: str | Path):
    """The family's image-only processor, read from the folder (tokenizer, image processor, chat template)."""
    fam = family_of(path)
    image_processor = load_image_processor(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs = {}
    chat_template = _read_chat_template(Path(path)) or getattr(tokenizer, "chat_template", None)
    if fam.name == "internvl":
        proc_cfg = _read_json(Path(path) / "processor_config.json")
        kwargs["image_seq_length"] = proc_cfg.get("image_seq_length", AutoConfig.from_pretrained(path).image_seq_length)
    return fam.processor_class(image_processor, tokenizer, chat_template=chat_template, **kwargs)


def set_pixel_budget(processor, min_pixels: int, max_pixels: int) -> None:
    """Resize budget of the Qwen-VL image processors (InternVL tiles at a fixed size and has none)."""
    ip = processor.image_processor
    if "shortest_edge" in (getattr(ip, "size", None) or {}):
        ip.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        ip.min_pixels, ip.max_pixels = min_pixels, max_pixels


def load_model_and_processor(path: str | Path, dtype=None, device: str | None = None):
    """Open a VLM folder (tiny or real, hub layout) with its processor; never imports torchvision."""
    fam = family_of(path)
    processor = load_processor(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = fam.model_class.from_pretrained(path, **kwargs)
    if device:
        model = model.to(device)
    return model, processor


def load_image_processor(path: str | Path):
    """The folder's image processor on its PIL backend (transformers' AutoImageProcessor needs torchvision).

    Hub folders name the class as `Qwen2VLImageProcessor`, `Qwen2VLImageProcessorFast` (older) or `...Pil`; all
    map to the same PIL class, which produces the same pixel values up to resampling differences.
    """
    import transformers

    cfg = _read_json(Path(path) / "preprocessor_config.json")
    declared = cfg.get("image_processor_type")
    if not declared:
        raise Vr1Error(f"{path}/preprocessor_config.json: missing field 'image_processor_type'")
    base = declared.removesuffix("Fast").removesuffix("Pil")
    cls = getattr(transformers, base + "Pil", None)
    if cls is None:
        raise Vr1Error(
            f"{path}: image processor '{declared}' has no PIL backend in transformers {transformers.__version__}"
        )
    return cls.from_pretrained(path)


def save_model_folder(model, processor, out: str | Path) -> Path:
    """Write model + processor in the hub layout that vLLM, verl, TRL and this loader all read: safetensors,
    tokenizer files, preprocessor/processor configs naming the family's upstream classes, chat_template.jinja."""
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    return save_processor_files(processor, out, family_of_model(model))


def save_processor_files(processor, out: str | Path, fam: Family) -> Path:
    """The processor half of a model folder (for trainers that save the weights themselves, e.g. ZeRO-3)."""
    out = Path(out)
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    template = processor.chat_template or processor.tokenizer.chat_template
    if template:
        (out / "chat_template.jinja").write_text(template)
    proc_cfg = {"processor_class": fam.upstream_processor}
    if fam.name == "internvl":
        proc_cfg["image_seq_length"] = processor.image_seq_length
    (out / "processor_config.json").write_text(json.dumps(proc_cfg, indent=2) + "\n")
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        p = out / name
        cfg = json.loads(p.read_text())
        cfg["processor_class"] = fam.upstream_processor
        if "image_processor_type" in cfg:  # hub folders name the base class; each consumer picks its backend
            cfg["image_processor_type"] = cfg["image_processor_type"].removesuffix("Pil")
        cfg.pop("chat_template", None)  # chat_template.jinja is the single source
        p.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (out / "chat_template.json").unlink(missing_ok=True)
    return out


def family_of_model(model) -> Family:
    model_type = getattr(model.config, "model_type", None)
    for fam in FAMILIES.values():
        if fam.model_type == model_type:
            return fam
    raise Vr1Error(f"model_type '{model_type}' is not supported; supported: {sorted(FAMILIES)}")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _read_chat_template(path: Path) -> str | None:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    js = _read_json(path / "chat_template.json")
    return js.get("chat_template")
