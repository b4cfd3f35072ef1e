"""Cold start against a real HTTP chat-completions server on loopback that injects faults: every sample ends
completed or failed-with-reason, none lost, none duplicated, concurrency limits hold, the API key never leaks."""

import json
from pathlib import Path

import pytest
import yaml
from chat_server import FAULTS, ChatServer, ServerState

from pipeline.cli import main

SECRET = "sk-vr1-test-0123456789-SECRET"


def make_manifest(demo_dir: Path, tmp: Path, n: int, always_fail: int | None = None) -> Path:
    rows = [json.loads(x) for x in (demo_dir / "train.jsonl").read_text().splitlines()[:n]]
    if always_fail is not None:
        rows[always_fail]["question"] += " ALWAYS_FAIL"
    (tmp / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"name": "demo_http", "format": "vr1", "path": "data.jsonl", "image_root": str(demo_dir)}
    (tmp / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return tmp / "manifest.yaml"


def make_config(tmp: Path, manifest: Path, base_url: str, **run) -> Path:
    teacher = {
        "backend": "openai",
        "base_url": base_url,
        "timeout_s": 1.0,
        "max_retries": 5,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.2,
        "max_pixels": 128 * 128,
    }
    cfg = {
        "data": {"manifests": [str(manifest)]},
        "vlm": {**teacher, "model": "test-vlm", "max_concurrency": 3},
        "reasoner": {**teacher, "model": "test-reasoner", "max_concurrency": 2, "api_key_env": "VR1_TEST_KEY"},
        "filter": {"min_thinking_chars": 40},
        "run": run,
    }
    (tmp / "cold.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "cold.yaml"


def read_jsonl(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines()]


@pytest.mark.timeout(300)
def test_faults_every_sample_accounted_for_and_no_secret_leaks(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=30, always_fail=7)
    state = ServerState(latency_s=0.01, fault_rate=0.5, hang_s=3.0)
    with ChatServer(state) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        assert main(["coldstart", "--config", str(cfg), "--name", "faults", "--runs-root", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "coldstart" / "faults"

    assert set(state.fault_log) == set(FAULTS), state.fault_log  # every kind of fault really happened
    records = read_jsonl(run / "coldstart.jsonl")
    assert len(records) == 30 and len({r["uid"] for r in records}) == 30  # none lost, none duplicated
    failed = [r for r in records if r["verdict"] == "failed"]
    assert [r["id"] for r in failed] == ["demo-train-000007"]
    assert "HTTP 500" in failed[0]["reasons"][0]["reason"] and "pseudo_cot" in failed[0]["reasons"][0]["reason"]
    kept = [r for r in records if r["verdict"] == "kept"]
    by_uid = {r["uid"]: r for r in records}
    for r in records:  # the teacher is always right: the only drops allowed are true duplicates
        if r["verdict"] == "dropped":
            (reason,) = r["reasons"]
            twin = by_uid[reason["reason"].split("near-duplicate of ")[1].split(" ")[0]]
            assert reason["rule"] == "near_duplicate" and (twin["question"], twin["answer"]) == (
                r["question"],
                r["answer"],
            )
    assert len(kept) >= 25
    for step in ("pseudo_cot", "description", "reasoning"):
        ok = [r["key"] for r in read_jsonl(run / "steps" / f"{step}.jsonl") if r["status"] == "ok"]
        assert len(ok) == len(set(ok)) == 29  # every completed request recorded exactly once

    # the reasoner's separate reasoning field became the thinking; coherence rewrote "the description says"
    k = kept[0]
    assert k["response"].startswith("<think>\n") and "</think>\n<answer>" in k["response"]
    assert "description says" not in k["response"] and "the image shows" in k["response"]
    assert k["edits"] and k["provenance"]["reasoning"]["model"] == "test-reasoner"
    cold = json.loads((run / "cold_start.json").read_text())
    assert len(cold) == len(kept) and all((run / p).is_file() for row in cold for p in row["images"])

    summary = json.loads((run / "summary.json").read_text())
    assert summary["roles"]["vlm"]["retries"] > 0 and summary["roles"]["reasoner"]["prompt_tokens"] > 0
    assert state.max_in_flight <= 3 + 2  # each role under its own cap
    assert f"Bearer {SECRET}" in state.auth_headers  # the key was used ...
    for p in run.rglob("*"):  # ... and appears nowhere in the run directory or logs
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p


def test_missing_key_variable_is_a_clean_error(demo_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VR1_TEST_KEY", raising=False)
    cfg = make_config(tmp_path, make_manifest(demo_dir, tmp_path, n=2), "http://127.0.0.1:9/v1")
    assert main(["coldstart", "--config", str(cfg), "--runs-root", str(tmp_path / "runs")]) == 2
    assert "VR1_TEST_KEY (named by api_key_env) is not set" in capsys.readouterr().err


def test_filter_report_counts_per_rule_and_source(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=6)
    with ChatServer(ServerState()) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        args = [
            "coldstart",
            "--config",
            str(cfg),
            "--name",
            "r",
            "--runs-root",
            str(tmp_path / "runs"),
            "filter.min_thinking_chars=100000",
        ]  # every thinking is now too short
        assert main(args) == 0
    report = json.loads((tmp_path / "runs" / "coldstart" / "r" / "filter_report.json").read_text())
    assert report["dropped"] == 6 and report["by_rule"] == {"length": 6}
    assert report["by_source"]["demo"]["keep_rate"] == 0.0
    dropped = read_jsonl(tmp_path / "runs" / "coldstart" / "r" / "dropped.jsonl")
    assert all(r["reasons"][0]["rule"] == "length" and "too short" in r["reasons"][0]["reason"] for r in dropped)


def test_changing_a_request_setting_reasks_exactly_the_affected_requests(demo_dir, tmp_path, monkeypatch):
    """The request key covers pixel budget, image detail, sampling and prompt text: changing a VLM setting re-asks
    the two VLM steps only (their answers are the same, so the reasoner's request is unchanged and reused);
    changing a reasoner setting re-asks the reasoning only; an unchanged rerun asks nothing."""
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    n = 5
    manifest = make_manifest(demo_dir, tmp_path, n=n)
    state = ServerState()
    with ChatServer(state) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)

        def asked(*overrides: str) -> int:
            before = state.served
            args = ["coldstart", "--config", str(cfg), "--name", "keys", "--runs-root", str(tmp_path / "runs")]
            assert main([*args, *overrides]) == 0
            return state.served - before

        assert asked() == 3 * n
        assert asked() == 0
        assert asked("vlm.max_pixels=4096") == 2 * n
        assert asked("vlm.max_pixels=4096", "vlm.image_detail=low") == 2 * n
        assert asked("vlm.max_pixels=4096", "vlm.image_detail=low", "reasoner.temperature=0.2") == n
        assert (
            asked("vlm.max_pixels=4096", "vlm.image_detail=low", "reasoner.temperature=0.2", "vlm.max_tokens=999")
            == 2 * n
        )
        assert (
            asked("vlm.max_pixels=4096", "vlm.image_detail=low", "reasoner.temperature=0.2", "vlm.max_tokens=999") == 0
        )
        prompt = tmp_path / "reason.txt"
        prompt.write_text((Path(__file__).resolve().parent.parent / "prompts" / "reason.txt").read_text() + "\n")
        assert (
            asked(
                "vlm.max_pixels=4096",
                "vlm.image_detail=low",
                "reasoner.temperature=0.2",
                "vlm.max_tokens=999",
                f"prompts.reasoning={prompt}",
            )
            == n
        )
    summary = json.loads((tmp_path / "runs" / "coldstart" / "keys" / "summary.json").read_text())
    this = summary["invocations"][-1]["roles"]
    assert this["vlm"]["reused"] == 2 * n and this["reasoner"]["requests"] == n
    assert len(summary["invocations"]) == 8 and summary["roles"]["reasoner"]["requests"] == 3 * n  # cumulative


def latest_name(runs: Path) -> str | None:
    link = runs / "coldstart" / "latest"
    return link.resolve().name if link.exists() else None


def test_a_run_that_produced_nothing_says_so_and_keeps_latest(demo_dir, tmp_path, monkeypatch, capsys):
    """Unreachable server, missing key variable: exit non-zero with one line naming the cause and the fix, and
    `latest` stays on the last run that produced something."""
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    runs = tmp_path / "runs"
    manifest = make_manifest(demo_dir, tmp_path, n=3)
    with ChatServer(ServerState()) as server:
        good = make_config(tmp_path, manifest, server.base_url)
        assert main(["coldstart", "--config", str(good), "--name", "good", "--runs-root", str(runs)]) == 0
    assert latest_name(runs) == "good"
    capsys.readouterr()

    bad = make_config(tmp_path, manifest, "http://127.0.0.1:9/v1")  # nothing listens on port 9
    assert main(["coldstart", "--config", str(bad), "--name", "unreachable", "--runs-root", str(runs)]) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("vr1 coldstart: error:")]
    assert len(errors) == 1 and "every one of the 3 samples failed" in errors[0] and "connection error" in errors[0]
    assert "base_url" in errors[0] and latest_name(runs) == "good"
    summary = json.loads((runs / "coldstart" / "unreachable" / "summary.json").read_text())
    assert summary["failed"] == 3 and "connection error" in next(iter(summary["failed_by_cause"]))

    monkeypatch.delenv("VR1_TEST_KEY")
    assert main(["coldstart", "--config", str(good), "--name", "nokey", "--runs-root", str(runs)]) == 2
    assert "VR1_TEST_KEY (named by api_key_env) is not set" in capsys.readouterr().err and latest_name(runs) == "good"


def test_the_lock_is_taken_before_anything_is_written(demo_dir, tmp_path, monkeypatch, capsys):
    import fcntl

    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    run = tmp_path / "runs" / "coldstart" / "busy"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("the running run's config\n")
    cfg = make_config(tmp_path, make_manifest(demo_dir, tmp_path, n=2), "http://127.0.0.1:9/v1")
    with open(run / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another vr1 coldstart holds the run
        assert main(["coldstart", "--config", str(cfg), "--name", "busy", "--runs-root", str(tmp_path / "runs")]) == 2
    assert "another vr1 coldstart is running" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == "the running run's config\n" and not (run / "run.log").exists()


def test_some_failed_samples_are_counted_with_their_cause(demo_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=4, always_fail=2)
    with ChatServer(ServerState()) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        assert main(["coldstart", "--config", str(cfg), "--name", "some", "--runs-root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "failed 1 " in out and "failed 1x: pseudo_cot: gave up after 6 attempts; last: HTTP 500" in out
    assert latest_name(tmp_path / "runs") == "some"


def test_run_log_tells_retries_give_ups_and_the_servers_words(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=8, always_fail=3)
    rows = (tmp_path / "data.jsonl").read_text().splitlines()
    rows[5] = rows[5].replace('"question": "', '"question": "REJECT_400 ', 1)
    (tmp_path / "data.jsonl").write_text("\n".join(rows) + "\n")
    with ChatServer(ServerState(fault_rate=0.5, faults=("429", "500"))) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        assert main(["coldstart", "--config", str(cfg), "--name", "story", "--runs-root", str(tmp_path / "runs")]) == 0
    log = (tmp_path / "runs" / "coldstart" / "story" / "run.log").read_text()
    assert "retrying in" in log and "attempt 1/6 failed (HTTP 429: rate limited)" in log
    assert (
        "demo-train-000003:pseudo_cot: failed for good: gave up after 6 attempts; last: HTTP 500: internal error" in log
    )
    rejected = "demo-train-000005:pseudo_cot: failed for good: HTTP 400: max_tokens is too large"
    assert rejected in log and "(not retried" in log
    records = {r["id"]: r for r in read_jsonl(tmp_path / "runs" / "coldstart" / "story" / "coldstart.jsonl")}
    assert "max_tokens is too large" in records["demo-train-000005"]["reasons"][0]["reason"]
    assert SECRET not in log


def test_a_resume_says_what_it_reused(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=3)
    with ChatServer(ServerState()) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        args = ["coldstart", "--config", str(cfg), "--name", "again", "--runs-root", str(tmp_path / "runs")]
        assert main(args) == 0 and main(args) == 0
    log = (tmp_path / "runs" / "coldstart" / "again" / "run.log").read_text()
    assert "resuming: answers already stored {'pseudo_cot': 3, 'description': 3, 'reasoning': 3}" in log
    assert "vlm: asked 0, reused 6 stored answers, 0 failed" in log


def test_the_summary_describes_the_run_across_resumes(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=4, always_fail=1)
    run = tmp_path / "runs" / "coldstart" / "twice"
    with ChatServer(ServerState(latency_s=0.02)) as server:
        cfg = make_config(tmp_path, manifest, server.base_url, retry_failed=True)
        args = ["coldstart", "--config", str(cfg), "--name", "twice", "--runs-root", str(tmp_path / "runs")]
        assert main(args) == 0
        (run / ".coldstart.jsonl.x1y2.tmp").mkdir()  # what a kill during an atomic write leaves
        assert main(args) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert [summary[k] for k in ("samples", "kept", "dropped", "failed")] == [4, 3, 0, 1]
    assert "generation" not in summary["dropped_by_rule"]  # a failed sample is not a filter drop
    assert "generation" not in json.loads((run / "filter_report.json").read_text())["by_rule"]
    assert list(summary["failed_by_cause"].values()) == [1] and "HTTP 500" in next(iter(summary["failed_by_cause"]))
    assert len(summary["invocations"]) == 2 and summary["requests_failed"] == 2  # the failed sample, asked twice
    first, second = (inv["roles"] for inv in summary["invocations"])
    assert summary["requests_answered"] == first["vlm"]["requests"] + first["reasoner"]["requests"] == 9
    assert second["vlm"]["reused"] == 6 and second["reasoner"]["reused"] == 3
    assert 0.02 * 9 <= summary["generating_s"] and summary["waiting_s"] >= 0
    assert summary["wall_s"] == round(sum(inv["wall_s"] for inv in summary["invocations"]), 2)
    assert not list(run.glob(".*.tmp"))  # temporaries never outlive the command


def test_streaming_gives_the_same_run_and_survives_a_cut_stream(demo_dir, tmp_path, monkeypatch):
    """stream: true per role against a server sending server-sent events (reasoning deltas included); a stream
    cut midway is retried; the answers equal the non-streamed run's, and switching streaming on reuses them."""
    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=4)
    runs = tmp_path / "runs"
    state = ServerState(stream_cut=1)
    with ChatServer(state) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        streamed = ["vlm.stream=true", "reasoner.stream=true"]
        assert main(["coldstart", "--config", str(cfg), "--name", "streamed", "--runs-root", str(runs), *streamed]) == 0
        assert state.streamed == 2 * 12  # every request cut once, then answered whole
        assert main(["coldstart", "--config", str(cfg), "--name", "whole", "--runs-root", str(runs)]) == 0
        served = state.served
        assert main(["coldstart", "--config", str(cfg), "--name", "whole", "--runs-root", str(runs), *streamed]) == 0
        assert state.served == served  # streaming changes how an answer arrives, not the request: all reused

    def answers(name):
        return [
            (r["id"], r["pseudo_cot"], r["description"], r["reasoning"]["thinking"], r["final_answer"], r["verdict"])
            for r in read_jsonl(runs / "coldstart" / name / "coldstart.jsonl")
        ]

    assert answers("streamed") == answers("whole") and all(a[3] for a in answers("streamed"))
    log = (runs / "coldstart" / "streamed" / "run.log").read_text()
    assert "connection error" in log and "retrying in" in log
    summary = json.loads((runs / "coldstart" / "streamed" / "summary.json").read_text())
    assert summary["roles"]["reasoner"]["completion_tokens"] > 0 and summary["roles"]["vlm"]["retries"] == 8


def test_cold_start_targets_in_the_published_layout_evaluate_the_same_way(demo_dir, tmp_path, monkeypatch):
    """output.answer_layout=vision_r1 writes `<answer> Final Answer:X </answer>`: Vision-R1's own evaluation
    extracts the answer from it, and vr1's reader and format verdict take it as they take vr1's layout."""
    import re

    from pipeline.data.formats import answer_from_response
    from pipeline.grading.blocks import is_well_formed

    monkeypatch.setenv("VR1_TEST_KEY", SECRET)
    manifest = make_manifest(demo_dir, tmp_path, n=4)
    with ChatServer(ServerState()) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        for layout in ("vr1", "vision_r1"):
            args = ["coldstart", "--config", str(cfg), "--name", layout, "--runs-root", str(tmp_path / "runs")]
            assert main([*args, f"output.answer_layout={layout}"]) == 0
    sets = {
        layout: json.loads((tmp_path / "runs" / "coldstart" / layout / "cold_start.json").read_text())
        for layout in ("vr1", "vision_r1")
    }
    assert sets["vr1"] and len(sets["vr1"]) == len(sets["vision_r1"])
    for ours, published in zip(sets["vr1"], sets["vision_r1"], strict=True):
        mine, theirs = ours["conversations"][1]["value"], published["conversations"][1]["value"]
        gold = re.search(r"<answer>(.*?)</answer>", mine, re.S).group(1)
        assert re.search(r"<answer> Final Answer:(.*?) </answer>", theirs, re.S).group(1).strip() == gold
        assert answer_from_response(theirs) == answer_from_response(mine) == gold
        assert is_well_formed(theirs) and is_well_formed(mine)
