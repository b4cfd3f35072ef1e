"""The demo teacher's training set: the exact requests the cold start sends, targets that agree with the gold answer,
and no item of the student's splits."""

import json

from coldstart.config import PromptsConfig
from coldstart.demo_teacher import teacher_set
from coldstart.filters import Candidate, FilterConfig, apply_filters
from coldstart.steps import load_steps
from pipeline.data.demo_data import generate_demo_data
from pipeline.data.manifest import read_manifest
from pipeline.grading.blocks import final_answer, split_think


def test_teacher_set_is_the_cold_start_requests_with_consistent_targets(tmp_path):
    data = tmp_path / "data"
    generate_demo_data(data, seed=3, tasks=("colour",), splits={"teacher": 12, "cold": 6})
    manifest = teacher_set(data / "manifest_teacher.yaml", tmp_path / "teacher_sft", seed=0)
    records = [json.loads(x) for x in (tmp_path / "teacher_sft" / "teacher.jsonl").read_text().splitlines()]
    assert len(records) == 36 and {r["meta"]["step"] for r in records} == {"pseudo_cot", "description", "reasoning"}
    samples = {s.id: s for s in read_manifest(data / "manifest_teacher.yaml").samples}
    cold_ids = {s.id for s in read_manifest(data / "manifest_cold.yaml").samples}
    p = PromptsConfig()
    steps = {
        s.name: s
        for s in load_steps({"pseudo_cot": p.pseudo_cot, "description": p.description, "reasoning": p.reasoning})
    }
    by_id = {r["id"]: r for r in records}
    cands = []
    for sid, s in samples.items():
        assert sid not in cold_ids
        pcot, desc, reason = (by_id[f"{sid}:{k}"] for k in ("pseudo_cot", "description", "reasoning"))
        prior = {
            "pseudo_cot": {"text": pcot["meta"]["reference_solution"]},
            "description": {"text": desc["meta"]["reference_solution"]},
        }
        for rec in (pcot, desc, reason):
            request = steps[rec["meta"]["step"]].build(s, prior, data)
            assert rec["question"] == request.text  # what the teacher learns to answer is what it will be asked
            assert len(rec["images"]) == len(request.images) == (0 if rec is reason else 1)
        colour = s.meta["attributes"]["colour"]
        assert colour in pcot["meta"]["reference_solution"] and colour in desc["meta"]["reference_solution"]
        assert s.answer not in desc["meta"]["reference_solution"].split()  # the description never states the answer
        text, thinking = split_think(reason["meta"]["reference_solution"], None)
        assert final_answer(text) == s.answer
        cands.append(
            Candidate(sid, "demo", "choice", s.answer, s.choices, s.question, thinking, text, final_answer(text), {})
        )
    # a teacher that wrote exactly its targets would pass every filter but near-duplicates (identical wordings)
    apply_filters(cands, FilterConfig())
    assert all({r["rule"] for r in c.reasons} <= {"near_duplicate"} for c in cands)
    assert sum(not c.reasons for c in cands) >= len(cands) // 2
    assert read_manifest(manifest).samples[0].source == "demo_teacher"


def test_r1_style_thinking_without_an_opening_tag_is_split_off():
    # R1-style chat templates open <think> in the prompt, so a server without a reasoning parser returns
    # "thinking</think>answer"; the thinking must still reach the filters, not be read as a broken format
    assert split_think("It is red.\n</think>\n<answer>A</answer>", None) == ("<answer>A</answer>", "It is red.")
    assert split_think("<think>\nIt is red.\n</think><answer>A</answer>", None) == ("<answer>A</answer>", "It is red.")
    # a server's own reasoning field wins; text with no closing tag, or one opened mid-text, is left as it is
    assert split_think("x</think>y", "server's") == ("x</think>y", "server's")
    assert split_think("<answer>A</answer>", None) == ("<answer>A</answer>", None)
    assert split_think("so <think>maybe</think> A", None) == ("so <think>maybe</think> A", None)
