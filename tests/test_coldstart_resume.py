"""kill -9 at random points of a real `vr1 coldstart` subprocess, then resume: the final set equals an
uninterrupted run's, no record is duplicated or torn, and nothing that was done is asked again."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chat_server import ChatServer, ServerState
from test_coldstart_http import make_config, make_manifest, read_jsonl

N = 24


def start(cfg: Path, runs: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "VR1_TEST_KEY": "sk-resume-test-key-000", "VR1_NO_PROGRESS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "coldstart",
            "--config",
            str(cfg),
            "--name",
            name,
            "--runs-root",
            str(runs),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill9_at_random_points_then_resume(demo_dir, tmp_path):
    rng = random.Random(7)
    manifest = make_manifest(demo_dir, tmp_path, n=N, always_fail=3)
    state = ServerState(latency_s=0.06, fault_rate=0.2, faults=("429", "500", "empty"))
    runs = tmp_path / "runs"
    with ChatServer(state) as server:
        cfg = make_config(tmp_path, manifest, server.base_url)
        ref = start(cfg, runs, "reference")
        assert ref.wait(240) == 0, ref.stdout.read().decode()[-2000:]

        steps = runs / "coldstart" / "interrupted" / "steps"
        kills = 0
        for _ in range(20):
            proc = start(cfg, runs, "interrupted")
            # let it get somewhere: wait until a random number of new records has landed, then kill -9
            before = sum(lines(p) for p in steps.glob("*.jsonl"))
            target = before + rng.randint(1, 12)
            deadline = time.time() + 60
            while proc.poll() is None and time.time() < deadline:
                if sum(lines(p) for p in steps.glob("*.jsonl")) >= target:
                    time.sleep(rng.uniform(0, 0.15))  # land anywhere: mid-request, mid-write, mid-output
                    break
                time.sleep(0.01)
            if proc.poll() is not None:
                assert proc.returncode == 0
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            pytest.fail("the interrupted run never finished")
        assert kills >= 5, f"only {kills} kills landed before the run finished"
        if proc.returncode is None or not (runs / "coldstart" / "interrupted" / "coldstart.jsonl").exists():
            final = start(cfg, runs, "interrupted")
            assert final.wait(240) == 0

        # one more rerun: everything is done, nothing is asked again
        served = state.served
        again = start(cfg, runs, "interrupted")
        out = again.communicate(timeout=240)[0].decode()
        assert again.returncode == 0 and state.served == served, out
        assert "requests 0" in out

    def verdicts(name):
        return {
            r["uid"]: (r["verdict"], r.get("response"))
            for r in read_jsonl(runs / "coldstart" / name / "coldstart.jsonl")
        }

    assert verdicts("interrupted") == verdicts("reference")
    kept = lambda name: [r["id"] for r in json.loads((runs / "coldstart" / name / "cold_start.json").read_text())]  # noqa: E731
    assert kept("interrupted") == kept("reference") and len(kept("reference")) >= N - 3
    for step in ("pseudo_cot", "description", "reasoning"):
        raw = (steps / f"{step}.jsonl").read_bytes()
        assert raw.endswith(b"\n")  # no torn line left behind
        ok = [r["key"] for r in map(json.loads, raw.splitlines()) if r["status"] == "ok"]
        assert len(ok) == len(set(ok))  # never a duplicate record
