"""SFT recipe `llama_factory` is LLaMA-Factory's supervised encoding token for token.

`tests/fixtures/llamafactory/expected.json` holds input ids and labels that LLaMA-Factory 0.9.5's own data path made
(`scripts/llamafactory_fixtures.py`: its ShareGPT converter, template qwen2_vl, Qwen2-VL plugin and supervised
processor) with the tiny Qwen2.5-VL tokenizer, for records in both Vision-R1-cold layouts: `<image>` first, after the
question, mid-text with newlines, whitespace around, two images, multi-turn, a system turn, a tiny image, a long
response; at cutoff 16384, at 64 (cuts inside image tokens), at 565 (cuts the response tail), and with Qwen2.5-VL's
real processor budget. Every record is compared, first at the encoder, then through vr1's manifest reader and SFT
data path."""

import json
from pathlib import Path

import pytest
import torch

from pipeline.data.manifest import Manifest
from pipeline.models.load import load_processor, set_pixel_budget
from rl.sft.config import SFTData
from rl.sft.llama_factory import conversation_problem, encode_conversation, infer_seqlen

FIX = Path(__file__).parent / "fixtures" / "llamafactory"
EXPECTED = json.loads((FIX / "expected.json").read_text())
SETTINGS = json.loads((FIX / "generation.json").read_text())["settings"]
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _processor(tiny_models, setting: str):
    """The tiny processor with the image budget LLaMA-Factory's run saw (the tiny model's, or Qwen2.5-VL's)."""
    processor = load_processor(tiny_models["qwen2_5_vl"])
    s = SETTINGS[setting]
    set_pixel_budget(processor, s["hf_image_processor_min_pixels"], s["hf_image_processor_max_pixels"])
    return processor


def _images(record) -> list[str]:
    refs = record.get("images", record.get("image")) or []
    return [str(FIX / "records" / r) for r in ([refs] if isinstance(refs, str) else refs)]


def _label(case) -> str:
    return f"{case['dataset']}/{case['case']}@{case['setting']}"


@pytest.mark.parametrize("case", EXPECTED, ids=_label)
def test_the_encoder_gives_llama_factorys_ids_and_labels(case, tiny_models):
    record = case["record"]
    messages = [(ROLES[t["from"]], t["value"]) for t in record["conversations"]]
    system_turns = "keep" if "system_tag" in case["dataset_info"]["tags"] else "drop"
    why = conversation_problem(messages, len(_images(record)), system_turns)
    assert (why is not None) == case["dropped"], why
    if case["dropped"]:
        return
    enc = encode_conversation(
        _processor(tiny_models, case["setting"]),
        messages,
        _images(record),
        case["cutoff_len"],
        case["image_max_pixels"],
        case["image_min_pixels"],
    )
    assert enc.input_ids == case["input_ids"]
    assert enc.labels == case["labels"]
    assert [list(g) for g in enc.image_inputs.get("image_grid_thw", torch.zeros(0, 3)).tolist()] == case.get(
        "image_grid_thw", []
    )
    assert (enc.image_tokens_kept < enc.image_tokens) == case.get("image_tokens_cut", False)


def test_infer_seqlen_cases():
    assert infer_seqlen(100, 10, 64) == (54, 10)  # short response: the prompt is cut
    assert infer_seqlen(10, 100, 64) == (10, 54)  # short prompt: the response is cut
    assert infer_seqlen(60, 40, 64) == (39, 25)  # both long: in proportion


def _manifest(tmp_path, dataset: str) -> str:
    info = json.loads((FIX / "records" / "dataset_info.json").read_text())[dataset]
    path = tmp_path / f"{dataset}.yaml"
    spec = {"name": dataset, "format": "sharegpt", "path": str(FIX / "records" / info["file_name"])}
    Manifest.from_dict({**spec, "image_root": str(FIX / "records")}, base=tmp_path)  # it loads
    path.write_text(json.dumps({**spec, "image_root": str(FIX / "records"), "answer_type": "auto"}))
    return str(path)


@pytest.mark.parametrize("dataset", ["vr1_llava_cot", "vr1_mulberry", "vr1_long"])
def test_the_sft_data_path_trains_exactly_those_tokens(dataset, tiny_models, tmp_path):
    """A ShareGPT manifest of the published layout -> vr1's reader -> load_examples -> preflight -> the collator's
    encode: the same ids and labels, the system-turn record dropped with LLaMA-Factory's reason."""
    from rl.sft.data import encode, load_examples, preflight

    setting = "tiny_cutoff16384"
    cfg = SFTData(manifests=[_manifest(tmp_path, dataset)], recipe="llama_factory", cutoff_len=16384)
    cfg.max_pixels, cfg.min_pixels = SETTINGS[setting]["image_max_pixels"], SETTINGS[setting]["image_min_pixels"]
    processor = _processor(tiny_models, setting)
    examples, skipped = load_examples(cfg)
    assert not skipped
    rows, offenders, report = preflight(processor, [e.as_row() for e in examples], cfg)
    cases = [c for c in EXPECTED if c["dataset"] == dataset and c["setting"] == setting]
    assert len(examples) == len(cases)
    want = [c for c in cases if not c["dropped"]]
    assert [o["problem"] for o in offenders] == ["recipe"] * (len(cases) - len(want))
    assert report["trained"] == len(rows) == len(want) and report["truncated"]["samples"] == 0
    for row, case in zip(rows, want, strict=True):
        enc = encode(processor, row)
        assert enc["input_ids"].tolist() == case["input_ids"] and enc["labels"].tolist() == case["labels"]
        assert enc["mm_token_type_ids"].sum() == case["num_image_pad_in_input_ids"]


def test_preflight_reports_truncation_and_cuts_inside_image_tokens(tiny_models, tmp_path):
    from rl.sft.data import describe_recipe, load_examples, preflight

    processor = _processor(tiny_models, "tiny_cutoff16384")
    long = _manifest(tmp_path, "vr1_long")
    tail = next(c for c in EXPECTED if c["setting"] == "tiny_cutoff565_tail")
    cfg = SFTData(manifests=[long], recipe="llama_factory", cutoff_len=565, on_overflow="truncate")
    rows, offenders, report = preflight(processor, [e.as_row() for e in load_examples(cfg)[0]], cfg)
    assert offenders == [] and rows[0]["n_tokens"] == 565 == len(tail["input_ids"])
    full = next(c for c in EXPECTED if c["setting"] == "tiny_cutoff16384" and c["dataset"] == "vr1_long")
    assert report["truncated"] == {"samples": 1, "tokens": full["length"] - 565, "max_tokens": full["length"] - 565}
    assert "1 truncated (493 tokens cut" in describe_recipe(report)
    lc = _manifest(tmp_path, "vr1_llava_cot")
    cfg64 = SFTData(manifests=[lc], recipe="llama_factory", cutoff_len=64, on_overflow="truncate")
    rows, offenders, report = preflight(processor, [e.as_row() for e in load_examples(cfg64)[0]], cfg64)
    at64 = [c for c in EXPECTED if c["setting"] == "tiny_cutoff64" and c["dataset"] == "vr1_llava_cot"]
    cut = {c["record"]["id"] for c in at64 if c.get("image_tokens_cut")}
    mismatched = {o["uid"].rsplit("/", 1)[-1]: o["reason"] for o in offenders if o["problem"] == "mismatch"}
    assert set(mismatched) == cut and cut and all("cuts inside the image tokens" in r for r in mismatched.values())
    assert {r["uid"].rsplit("/", 1)[-1] for r in rows} == {c["record"]["id"] for c in at64 if not c["dropped"]} - cut
    skip = SFTData(manifests=[long], recipe="llama_factory", cutoff_len=565, on_overflow="skip")
    _, offenders, _ = preflight(processor, [e.as_row() for e in load_examples(skip)[0]], skip)
    assert [o["problem"] for o in offenders] == ["overflow"]


def test_truncate_belongs_to_the_llama_factory_recipe():
    with pytest.raises(ValueError, match="on_overflow must be one of skip, refuse with recipe vr1"):
        SFTData(on_overflow="truncate")
    with pytest.raises(ValueError, match="recipe 'lf' unknown"):
        SFTData(recipe="lf")
