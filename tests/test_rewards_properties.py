"""Rewards are total: any input gives a float in [0, 1], no exception, in bounded time. OVD matches
pycocotools. The math-verify pool works from threads and survives a dying worker."""

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from coco_reference import pycocotools_map
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.grading.mathverify import MathVerifyPool
from rl.rewards.detection import coco_map, ovd_reward
from rl.rewards.registry import PRESETS, REWARDS, TASK_METRICS, score

INFOS = [
    {"ground_truth": "C", "answer_type": "choice", "choices": ["1", "2", "3"]},
    {"ground_truth": "12", "answer_type": "number"},
    {"ground_truth": "3\\sqrt{2}", "answer_type": "expression"},
    {"ground_truth": "red circle", "answer_type": "text", "text_fuzzy": 80},
    {"ground_truth": "cat", "answer_type": "label"},
    {
        "ground_truth": "[10, 10, 50, 50]",
        "answer_type": "bbox",
        "image_sizes": [[100, 80]],
        "pred_frame": "abs_resized",
    },
    {
        "ground_truth": '[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]',
        "answer_type": "boxes",
        "image_sizes": [[100, 80]],
    },
]
TAGS = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "{",
        "}",
        "\\boxed{",
        "$",
        "[",
        "]",
        "C",
        "12",
        "\\frac{",
        "^{",
        "!",
        " or ",
        "Final Answer:",
        "\n",
        '"bbox_2d":',
        "None",
    ]
)
RESPONSES = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(TAGS, st.text(max_size=8)), max_size=40).map("".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def check_all(response: str) -> None:
    for info in INFOS:
        for name in REWARDS:
            got = score(response, info, {name: 1.0})
            metrics = TASK_METRICS.get(info["answer_type"], {})
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for k, v in got.items() if k not in metrics), got
            assert all(math.isfinite(got[k]) and got[k] >= 0 for k in metrics), (name, got)
        for preset in PRESETS:
            assert 0.0 <= score(response, info, preset)["score"] <= 1.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RESPONSES)
def test_any_string_gives_a_bounded_float(response):
    check_all(response)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(TAGS, st.text(max_size=6)), max_size=12).map("".join))
def test_any_wellformed_wrapper_gives_a_bounded_float(answer):
    check_all(f"<think>t</think><answer>{answer}</answer>")


BOMBS = {
    "1MB": "<think>" + "a" * 1_000_000 + "</think><answer>12</answer>",
    "1MB-answer": "<think>x</think><answer>" + "1" * 1_000_000 + "</answer>",
    "nested-braces": "<think>x</think><answer>" + "{" * 10_000 + "}" * 10_000 + "</answer>",
    "unclosed-braces": "<think>x</think><answer>\\frac{" + "{" * 10_000 + "</answer>",
    "tower": "<think>x</think><answer>10^{10^{10^{10}}}</answer>",
    "factorial": "<think>x</think><answer>(10^6)!</answer>",
    "big-power": "<think>x</think><answer>9^{9^{9}}</answer>",
    "binary-junk": "".join(chr(random.Random(0).randrange(0, 0x3000)) for _ in range(20_000)),
    "many-tags": "<think></think><answer>" * 50_000,
    "deep-json": "<think>x</think><answer>" + "[" * 5000 + "]" * 5000 + "</answer>",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_score_zero_or_bounded(name):
    response = BOMBS[name]
    check_all(response)
    expected = 1.0 if name == "1MB" else 0.0  # a long think with the right short answer is simply right
    assert score(response, INFOS[1])["score"] == expected
    for info in (INFOS[0], INFOS[2]):
        assert score(response, info)["score"] == 0.0


def _random_case(r: random.Random):
    labels = ["a", "b", "c"][: r.randint(1, 3)]

    def box():
        x, y = r.uniform(0, 80), r.uniform(0, 80)
        return [x, y, x + r.uniform(1, 30), y + r.uniform(1, 30)]

    gold = [{"label": r.choice(labels), "bbox_2d": box()} for _ in range(r.randint(1, 8))]
    pred = []
    for g in gold:
        if r.random() < 0.7:
            b = [v + r.uniform(-4, 4) for v in g["bbox_2d"]]
            b = [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]) + 0.1, max(b[1], b[3]) + 0.1]
            label = g["label"] if r.random() < 0.9 else r.choice(labels + ["z"])
            pred.append({"label": label, "bbox_2d": b, "confidence": round(r.random(), 1)})
    pred += [
        {"label": r.choice(labels), "bbox_2d": box(), "confidence": round(r.random(), 1)}
        for _ in range(r.randint(0, 6))
    ]
    r.shuffle(pred)
    return gold, pred


def test_coco_map_matches_pycocotools_on_random_cases():
    r = random.Random(1234)
    for case in range(250):
        gold, pred = _random_case(r)
        ours, ref = coco_map(gold, pred), pycocotools_map(gold, pred)
        assert abs(ours - ref) < 1e-6, (case, ours, ref, gold, pred)


def test_ovd_reward_is_factor_times_pycocotools_map():
    r = random.Random(99)
    for _ in range(50):
        gold, pred = _random_case(r)
        info = {"ground_truth": json.dumps(gold), "answer_type": "boxes", "coord_frame": "normalized"}
        response = "<think>x</think><answer>" + json.dumps(pred) + "</answer>"
        want = min(1.0, len(gold) / len(pred)) * pycocotools_map(gold, pred) if pred else 0.0
        assert ovd_reward(response, info) == pytest.approx(want, abs=1e-6)


def test_math_pool_from_threads_and_after_a_worker_dies():
    pool = MathVerifyPool(n_workers=2, timeout_s=2)
    try:
        pairs = [("3\\sqrt{2}", "\\sqrt{18}"), ("\\frac{1}{2}", "0.5"), ("x^2+1", "1+x^2"), ("\\sqrt{2}", "2")]
        with ThreadPoolExecutor(8) as ex:  # verl calls compute_score from a thread pool
            got = list(ex.map(lambda p: pool.verify(*p), pairs * 4))
        assert got == [1.0, 1.0, 1.0, 0.0] * 4
        workers = [pool._idle.get() for _ in range(pool._idle.qsize())]
        for w in workers:  # a crash (OOM killer, segfault) of every idle worker
            w.proc.kill()
            w.proc.wait()
            pool._idle.put(w)
        # a dead worker is noticed and replaced before it is given work: nothing is lost
        assert pool.verify_many([("\\frac{2}{4}", "0.5"), ("\\sqrt{8}", "2\\sqrt{2}")] * 10) == [1.0, 1.0] * 10
        assert pool.verify("\\sqrt{12}", "2\\sqrt{3}") == 1.0
        assert pool.replaced >= 1
    finally:
        pool.close()


def test_a_hanging_comparison_is_killed_and_scores_zero(tmp_path):
    """Big-integer arithmetic in C ignores signals; the parent's deadline must stop it."""
    from pipeline.grading.mathverify import WORKER_SCRIPT

    script = tmp_path / "hanging_worker.py"
    script.write_text(
        open(WORKER_SCRIPT)
        .read()
        .replace(
            "        for gold, pred, *explain in json.loads(line):\n",
            "        for gold, pred, *explain in json.loads(line):\n            if gold == 'HANG':\n"
            "                import time\n                time.sleep(3600)\n",
        )
    )
    pool = MathVerifyPool(n_workers=1, timeout_s=1, worker_script=str(script))
    try:
        got = pool.verify_many([("1", "1"), ("HANG", "x"), ("\\frac{1}{2}", "0.5"), ("2", "3")])
        assert got == [1.0, 0.0, 1.0, 0.0] and pool.killed == 1
    finally:
        pool.close()


def test_coco_map_matches_pycocotools_with_and_without_contested_gold_boxes():
    # jittered copies of the gold (no gold box is the candidate of two detections) take the vectorised path;
    # duplicated and overlapping predictions (contested gold boxes) take the greedy loop
    r = random.Random(7)
    for case in range(60):
        gold = []
        for _ in range(r.randint(5, 30)):
            x, y = r.randint(0, 900), r.randint(0, 900)
            gold.append({"label": r.choice("ab"), "bbox_2d": [x, y, x + r.randint(10, 90), y + r.randint(10, 90)]})
        pred = [
            {"label": g["label"], "bbox_2d": [v + r.randint(-5, 5) for v in g["bbox_2d"]], "confidence": r.random()}
            for g in gold
            if r.random() < 0.8
        ]
        pred = [p for p in pred if p["bbox_2d"][0] < p["bbox_2d"][2] and p["bbox_2d"][1] < p["bbox_2d"][3]]
        if case % 2:
            pred += [dict(p, confidence=p["confidence"] / 2) for p in pred[: len(pred) // 2]]
        assert coco_map(gold, pred) == pytest.approx(pycocotools_map(gold, pred), abs=1e-9), case


def test_parsed_boxes_are_each_callers_own():
    from pipeline.grading.boxes import parse_boxes

    text = '[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]'
    first = parse_boxes(text)
    first[0]["bbox_2d"][0] = 99
    first[0]["label"] = "dog"
    assert parse_boxes(text) == [{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]
