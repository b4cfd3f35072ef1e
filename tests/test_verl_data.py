"""The parquet we write is read by verl 0.9.1's own RLHFDataset (its prompt-length filter, its message builder, its
image path through qwen_vl_utils) with the tiny Qwen2.5-VL processor, and verl sees what we meant: every row kept,
the system prompt in the rendered prompt, each image resized to our pixel budget, and as many image tokens as our
own validation counted.

torchvision: qwen_vl_utils imports it at module top, and the registry's torchvision is a CUDA build that cannot
import beside our CPU torch. The image path never calls it (only video reading and video resizing do), so the test
puts a stand-in module under that name whose every member raises when used: if verl's image path ever touched
torchvision, the test would fail, not pass quietly. On GPU nodes the real torchvision is installed (make
install-gpu) and `vr1 doctor` checks it imports.
"""

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest
from conftest import make_image
from omegaconf import OmegaConf

from pipeline.data.schema import Sample
from pipeline.grading.geometry import smart_resize

SYSTEM = "You are a careful geometry tutor. Think inside <think></think>, answer inside <answer></answer>."
SIZES = [(640, 480), (300, 900), (120, 60), (1000, 1000)]


class _Unusable:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise AssertionError(f"verl's image path used torchvision.{self._name}.{attr}")


@pytest.fixture
def without_torchvision(monkeypatch):
    """A `torchvision` whose members raise, for as long as the test runs (see the module docstring). What decides
    on torchvision at import time (datasets, transformers, verl) is imported first, with the real answer: absent."""
    import datasets  # noqa: F401
    import transformers  # noqa: F401
    import verl.utils.dataset.rl_dataset  # noqa: F401

    stand_in = types.ModuleType("torchvision")
    stand_in.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
    stand_in.__version__ = "0.0+stand-in"
    stand_in.io = _Unusable("io")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.InterpolationMode = _Unusable("transforms.InterpolationMode")
    transforms.functional = _Unusable("transforms.functional")
    stand_in.transforms = transforms
    monkeypatch.setitem(sys.modules, "torchvision", stand_in)
    monkeypatch.setitem(sys.modules, "torchvision.transforms", transforms)
    for name in [m for m in sys.modules if m.startswith("qwen_vl_utils")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m.startswith("qwen_vl_utils")]:
        sys.modules.pop(name, None)


def _items(tmp_path):
    root = tmp_path / "src"
    items = []
    for i, size in enumerate(SIZES):
        rel = f"images/{i}.png"
        make_image(root / rel, colour=("red", "green", "blue", "white")[i], size=size)
        images = [rel] if i != 3 else [rel, "images/0.png"]  # one two-image prompt
        question = "In the figure, find x." if i != 3 else "Compare the two figures. Which angle is larger?"
        s = Sample(f"q{i}", "geo", question, str(10 + i), "number", images=images)
        items.append((s, root))
    return items


def _verl_dataset(parquet, processor, max_prompt_length):
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "image_key": "images",
            "max_prompt_length": max_prompt_length,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "truncation": "error",
            "cache_dir": str(parquet.parent / "cache"),
        }
    )
    return RLHFDataset(str(parquet), processor.tokenizer, config, processor=processor), config


@pytest.mark.slow
@pytest.mark.parametrize("embed", [True, False], ids=["image-bytes", "image-paths"])
def test_verl_rlhf_dataset_sees_our_prompts(embed, tiny_models, tmp_path, without_torchvision):
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    from pipeline.models.load import load_processor, set_pixel_budget
    from rl.ptst.config import RLData
    from rl.ptst.data import processor_budget, validate, write_parquet

    cfg = RLData(max_prompt_length=400, min_pixels=4 * 28 * 28, max_pixels=32 * 28 * 28, embed_images=embed)
    verl_processor = load_processor(tiny_models["qwen2_5_vl"])  # as verl loads it: the model's own budget
    ours = load_processor(tiny_models["qwen2_5_vl"])
    set_pixel_budget(ours, cfg.min_pixels, cfg.max_pixels)
    measured: dict = {}
    items = _items(tmp_path)
    keep, problems = validate(items, ours, cfg, SYSTEM, processor_budget(verl_processor), measured)
    assert problems == [] and len(keep) == len(items)

    parquet = write_parquet(keep, tmp_path / "out" / "train.parquet", "train", cfg, SYSTEM)
    longest = max(m["prompt_tokens"] for m in measured.values())
    ds, config = _verl_dataset(parquet, verl_processor, max_prompt_length=cfg.max_prompt_length)
    assert len(ds) == len(items)  # verl's own length filter dropped nothing

    size_of = {f"images/{i}.png": size for i, size in enumerate(SIZES)}
    image_token = verl_processor.tokenizer.convert_tokens_to_ids(verl_processor.image_token)
    for i, (s, _root) in enumerate(keep):
        messages = ds[i]["raw_prompt"]
        assert messages[0] == {"role": "system", "content": [{"type": "text", "text": SYSTEM}]}
        rendered = verl_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert SYSTEM in rendered and s.question in rendered
        images, videos, _ = RLHFDataset._process_multi_modal_info(messages, ds.image_patch_size, config)
        want = [smart_resize(*size_of[rel], 28, cfg.min_pixels, cfg.max_pixels) for rel in s.images]
        assert [im.size for im in images] == want  # resized to our budget, not qwen_vl_utils' default
        inputs = build_multimodal_processor_inputs(verl_processor, text=[rendered], images=images, videos=videos)
        ids = inputs["input_ids"][0].tolist()
        ours_counted = measured[f"{s.source}/{s.id}"]
        assert ids.count(image_token) == sum(ours_counted["image_tokens"])
        assert len(ids) == ours_counted["prompt_tokens"]

    # the same filter one token below our longest prompt drops exactly the prompts our count says are longer
    fewer, _ = _verl_dataset(parquet, verl_processor, max_prompt_length=longest - 1)
    assert len(fewer) == sum(m["prompt_tokens"] <= longest - 1 for m in measured.values()) < len(items)


def test_a_budget_the_models_processor_would_undo_is_refused(tiny_models, tmp_path):
    """Our budget above the model's own: verl's processor would shrink the image again after qwen_vl_utils, and
    the reward's resized frame would not be what the model saw. Validation says so per item."""
    from pipeline.models.load import load_processor, set_pixel_budget
    from rl.ptst.config import RLData
    from rl.ptst.data import processor_budget, validate

    native = processor_budget(load_processor(tiny_models["qwen2_5_vl"]))
    cfg = RLData(max_prompt_length=4000, max_pixels=native[1] * 4)
    ours = load_processor(tiny_models["qwen2_5_vl"])
    set_pixel_budget(ours, cfg.min_pixels, cfg.max_pixels)
    keep, problems = validate(_items(tmp_path)[:1], ours, cfg, None, native)
    assert keep == [] and "processor budget" in problems[0]["reason"]


def test_system_prompt_and_budget_columns_in_the_parquet(tmp_path):
    import pyarrow.parquet as pq

    from pipeline.data.manifest import Manifest, read_manifest
    from rl.ptst.config import RLData
    from rl.ptst.data import write_parquet

    items = _items(tmp_path)
    for embed in (True, False):
        cfg = RLData(min_pixels=3136, max_pixels=25088, embed_images=embed)
        rows = pq.read_table(write_parquet(items, tmp_path / f"{embed}.parquet", "train", cfg, SYSTEM)).to_pylist()
        for row, (s, root) in zip(rows, items, strict=True):
            assert row["prompt"][0] == {"role": "system", "content": SYSTEM}
            assert [(c["min_pixels"], c["max_pixels"]) for c in row["images"]] == [(3136, 25088)] * len(s.images)
            if embed:
                assert "image" not in row["images"][0] and row["images"][0]["bytes"]
            else:
                assert "bytes" not in row["images"][0]
                assert row["images"][0]["image"] == str((root / s.images[0]).resolve())
        no_system = pq.read_table(write_parquet(items, tmp_path / "n.parquet", "train", cfg)).to_pylist()
        assert [m["role"] for m in no_system[0]["prompt"]] == ["user"]
        # and our own reader takes both back (by-path cells: the manifest's image root holds the absolute paths)
        root = tmp_path if embed else Path("/")
        spec = {"name": "back", "format": "verl_parquet", "path": str(tmp_path / f"{embed}.parquet")}
        back = read_manifest(Manifest.from_dict({**spec, "image_root": str(root)}, base=tmp_path)).samples
        assert [(b.id, b.question, len(b.images)) for b in back] == [
            (s.id, s.question, len(s.images)) for s, _ in items
        ]
