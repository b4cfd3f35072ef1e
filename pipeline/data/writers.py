"""Writers for the layouts other tools read: LLaMA-Factory ShareGPT JSON, HF datasets, verl parquet.

Every output is self-contained (ShareGPT: images linked beside the JSON under their relative paths; HF and
parquet: image bytes embedded with their relative path) and written atomically. Each keeps the complete Sample
(ShareGPT in a `vr1` key, HF as columns, parquet in `extra_info`) so that reading it back loses nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.data.images import resolve_image
from pipeline.data.reward_info import reward_columns, reward_info
from pipeline.data.schema import IMAGE_PLACEHOLDER, Sample
from pipeline.io import atomic_path, write_json


def assistant_text(sample: Sample, response_key: str | None = "response") -> str:
    """The assistant turn: the sample's response (cold-start reasoning, reference solution) or the bare answer."""
    text = sample.meta.get(response_key) if response_key else None
    return text if isinstance(text, str) and text else f"<answer>{sample.answer}</answer>"


ImageRoot = Path | str | Callable[[Sample, str], Path]


def source_image(image_root: ImageRoot, sample: Sample, rel: str) -> Path:
    """Where the image `rel` of `sample` lies: under one image root, or wherever a locator function says
    (a set drawn from several manifests has several roots)."""
    if callable(image_root):
        return image_root(sample, rel)
    return resolve_image(Path(image_root), rel, "images")


def user_text(sample: Sample) -> str:
    return IMAGE_PLACEHOLDER * len(sample.images) + sample.question


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        if dst.samefile(src) or dst.read_bytes() == src.read_bytes():
            return
        raise FileExistsError(f"{dst} exists with other content; refusing to overwrite an image")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_sharegpt(
    samples: Iterable[Sample],
    out: str | Path,
    image_root: ImageRoot,
    response_key: str | None = "response",
    dataset_name: str | None = None,
) -> Path:
    """LLaMA-Factory ShareGPT JSON (Vision-R1-cold layout: `conversations` human/gpt + `images`), plus a
    `dataset_info.json` entry beside it so `dataset_dir` can point at the folder directly."""
    out = Path(out)
    records = []
    for s in samples:
        for rel in s.images:
            _link_or_copy(source_image(image_root, s, rel), out.parent / rel)
        exact = {k: v for k, v in s.to_dict().items() if k not in ("id", "images")}
        records.append(
            {
                "id": s.id,
                "conversations": [
                    {"from": "human", "value": user_text(s)},
                    {"from": "gpt", "value": assistant_text(s, response_key)},
                ],
                "images": list(s.images),
                "vr1": exact,
            }
        )
    write_json(out, records, indent=1)
    name = dataset_name or out.stem
    info_path = out.parent / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info[name] = {
        "file_name": out.name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    }
    write_json(info_path, info)
    return out


def _image_cells(s: Sample, image_root: ImageRoot, embed: bool = True) -> list[dict]:
    if not embed:
        return [{"image": str(source_image(image_root, s, rel).resolve()), "path": rel} for rel in s.images]
    return [{"bytes": source_image(image_root, s, rel).read_bytes(), "path": rel} for rel in s.images]


def write_hf_dataset(
    samples: Iterable[Sample], out: str | Path, image_root: ImageRoot, response_key: str | None = "response"
) -> Path:
    """HF `datasets` folder (save_to_disk): `messages` + `images` as TRL's VLM trainers read them, and every
    Sample field as its own column."""
    import datasets

    rows = []
    for s in samples:
        user = [{"type": "image", "text": None} for _ in s.images] + [{"type": "text", "text": s.question}]
        rows.append(
            {
                "id": s.id,
                "source": s.source,
                "question": s.question,
                "answer": s.answer,
                "answer_type": s.answer_type,
                "choices": s.choices,
                "meta": json.dumps(s.meta, ensure_ascii=False),
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": [{"type": "text", "text": assistant_text(s, response_key)}]},
                ],
                "images": _image_cells(s, image_root),
                "image_paths": list(s.images),  # datasets keeps only basenames in image cells
            }
        )
    part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    features = datasets.Features(
        {
            **{k: datasets.Value("string") for k in ("id", "source", "question", "answer", "answer_type")},
            "choices": datasets.List(datasets.Value("string")),
            "meta": datasets.Value("string"),
            "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.List(part)}),
            "images": datasets.List(datasets.Image()),
            "image_paths": datasets.List(datasets.Value("string")),
        }
    )
    # from_dict with empty columns still writes a valid (empty) dataset; from_list([]) cannot infer the schema
    ds = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
    out = Path(out)
    with atomic_path(out) as tmp:
        ds.save_to_disk(str(tmp))
    return out


def default_verl_prompt(s: Sample) -> str:
    return user_text(s)


def write_verl_parquet(
    samples: Iterable[Sample],
    out: str | Path,
    image_root: ImageRoot,
    split: str = "train",
    prompt_fn: Callable[[Sample], str] = default_verl_prompt,
    ability: str = "math",
    pixel_budget: tuple[int, int] | None = None,
    system_prompt: str | None = None,
    embed_images: bool = True,
    pred_frame: str | None = None,
) -> Path:
    """verl's multimodal parquet (geo3k layout). `extra_info` carries the reward columns
    (`pipeline.data.reward_info`, with `pixel_budget` = the policy's (min_pixels, max_pixels)) and the rest of
    the Sample; verl passes it to `compute_score`.

    Each image cell also carries `min_pixels`/`max_pixels`: verl hands the cell to `qwen_vl_utils.fetch_image`,
    which resizes to exactly that budget (without them it uses its own default, about 16K tokens per image).
    `embed_images=False` writes the image's absolute path (`image`) instead of its bytes, for sets on a shared
    filesystem: embedded bytes are held in host memory by every dataloader worker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    min_pixels, max_pixels = pixel_budget or (None, None)
    for i, s in enumerate(samples):
        info = reward_info(
            s,
            lambda rel, s=s: source_image(image_root, s, rel),
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            pred_frame=pred_frame,
        )
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        cells = [
            {**cell, "min_pixels": min_pixels, "max_pixels": max_pixels}
            for cell in _image_cells(s, image_root, embed=embed_images)
        ]
        rows.append(
            {
                "data_source": s.source,
                "prompt": [*system, {"role": "user", "content": prompt_fn(s)}],
                "images": cells,
                "ability": ability,
                "reward_model": {"style": "rule", "ground_truth": s.answer},
                "extra_info": {
                    "split": split,
                    "index": i,
                    "id": s.id,
                    "question": s.question,
                    **reward_columns(info),
                    "meta": json.dumps(s.meta, ensure_ascii=False),
                },
            }
        )
    string = pa.string()
    # verl opens `bytes` whenever the key exists, even null: a by-path cell must not have the field at all
    image_fields = [("bytes", pa.binary()), ("path", string)] if embed_images else [("image", string), ("path", string)]
    schema = pa.schema(
        [
            ("data_source", string),
            ("prompt", pa.list_(pa.struct([("role", string), ("content", string)]))),
            ("images", pa.list_(pa.struct([*image_fields, ("min_pixels", pa.int64()), ("max_pixels", pa.int64())]))),
            ("ability", string),
            ("reward_model", pa.struct([("style", string), ("ground_truth", string)])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("split", string),
                        ("index", pa.int64()),
                        ("id", string),
                        ("question", string),
                        ("answer", string),
                        ("answer_type", string),
                        ("choices", string),
                        ("coord_frame", string),
                        ("pred_frame", string),
                        ("image_paths", string),
                        ("image_sizes", string),
                        ("min_pixels", pa.int64()),
                        ("max_pixels", pa.int64()),
                        ("meta", string),
                    ]
                ),
            ),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    out = Path(out)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out
