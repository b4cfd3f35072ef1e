"""Several servers behind one role: the config forms and their errors, dispatch under each replica's own cap, a
replica dying mid-run (its requests are asked again elsewhere: no sample lost), a sick replica rested and taken back
after a successful probe, and a role whose every replica fails giving up instead of waiting forever."""

import asyncio
import json
from pathlib import Path

import pytest
from chat_server import ChatServer, ServerState
from test_coldstart_http import make_config, make_manifest, read_jsonl

from coldstart.config import ColdStartConfig
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.generation import BackendConfig, ChatRequest, GenerationError
from pipeline.generation.openai_http import OpenAIBackend


def vlm_cfg(base_url: str) -> BackendConfig:
    return load_config(ColdStartConfig, None, ["vlm.backend=openai", f"vlm.base_url={base_url}"]).vlm


def test_base_url_takes_one_url_a_list_or_replicas_with_their_own_cap():
    assert vlm_cfg("http://a:8000/v1").replicas() == [("http://a:8000/v1", 8)]
    cfg = vlm_cfg("[http://a/v1, {base_url: http://b/v1, max_concurrency: 2}, http://c/v1]")
    assert cfg.replicas() == [("http://a/v1", 8), ("http://b/v1", 2), ("http://c/v1", 8)]
    for bad, key in [
        ("[http://a/v1, b:8000/v1]", "vlm.base_url[1] 'b:8000/v1' must start with http"),
        ("[http://a/v1, http://a/v1]", "lists a server twice: http://a/v1"),
        ("[{base_url: http://a/v1, max_concurency: 2}]", "'vlm.base_url[0].max_concurency'; did you mean"),
        ("[{base_url: http://a/v1, max_concurrency: 0}]", "vlm.base_url[0].max_concurrency=0 is out of range"),
        ("[]", "backend openai needs base_url"),
    ]:
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            vlm_cfg(bad)


def complete_all(cfg: BackendConfig, texts: list[str]) -> tuple[list, list[dict]]:
    async def go():
        backend = OpenAIBackend(cfg)
        try:
            done = await asyncio.gather(
                *(backend.complete(ChatRequest(text=t, key=f"r{i}")) for i, t in enumerate(texts)),
                return_exceptions=True,
            )
        finally:
            await backend.aclose()
        return done, backend.pool.stats()

    return asyncio.run(go())


def openai_cfg(replicas, **kw) -> BackendConfig:
    base = dict(backend="openai", model="m", timeout_s=2.0, max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)
    return BackendConfig(base_url=replicas, **{**base, **kw})


@pytest.mark.timeout(60)
def test_each_replica_stays_under_its_own_cap_and_the_faster_one_answers_more():
    fast, slow, small = ServerState(latency_s=0.01), ServerState(latency_s=0.06), ServerState(latency_s=0.01)
    with ChatServer(fast) as a, ChatServer(slow) as b, ChatServer(small) as c:
        replicas = [a.base_url, b.base_url, {"base_url": c.base_url, "max_concurrency": 1}]
        cfg = load_config(ColdStartConfig, None, ["vlm.backend=openai", f"vlm.base_url={json.dumps(replicas)}"]).vlm
        cfg.max_concurrency = 3
        done, stats = complete_all(cfg, [f"The correct answer is: {i}\n" for i in range(90)])
    assert all(not isinstance(d, Exception) for d in done) and fast.served + slow.served + small.served == 90
    assert (fast.max_in_flight, slow.max_in_flight, small.max_in_flight) <= (3, 3, 1)
    assert max(fast.max_in_flight, slow.max_in_flight) == 3  # the caps were reached, so they were what held
    assert fast.served > slow.served  # fewest outstanding: a slot that frees sooner takes the next request
    assert [s["answered"] for s in stats] == [fast.served, slow.served, small.served]


@pytest.mark.timeout(120)
def test_a_replica_dying_mid_run_loses_no_sample(demo_dir, tmp_path, monkeypatch):
    """One of three VLM replicas dies (connections refused, the requests it held dropped) once 10 requests have
    reached it: those requests are asked again on the others, and every sample completes."""
    monkeypatch.setenv("VR1_TEST_KEY", "sk-test-replicas")
    manifest = make_manifest(demo_dir, tmp_path, n=24)
    states = [ServerState(latency_s=0.02), ServerState(latency_s=0.02, die_after=10), ServerState(latency_s=0.03)]
    with ChatServer(states[0]) as a, ChatServer(states[1]) as b, ChatServer(states[2]) as c, ChatServer() as r:
        cfg = make_config(tmp_path, manifest, r.base_url)
        urls = json.dumps([a.base_url, b.base_url, c.base_url])
        args = ["coldstart", "--config", str(cfg), "--name", "failover", "--runs-root", str(tmp_path / "runs")]
        assert main([*args, f"vlm.base_url={urls}", "vlm.backoff_base_s=5", "vlm.replica_rest_s=60"]) == 0
    run = tmp_path / "runs" / "coldstart" / "failover"
    assert states[1].dead and states[1].served <= 10  # it died with (at least) the 11th request in flight
    records = read_jsonl(run / "coldstart.jsonl")
    assert len(records) == 24 and not [r for r in records if r["verdict"] == "failed"]
    ok = [r["key"] for r in read_jsonl(run / "steps" / "pseudo_cot.jsonl") if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) == 24
    log = (run / "run.log").read_text()
    assert f"failed at {b.base_url}" in log and "retrying in 0.00s on another replica" in log  # no 5 s backoff
    assert f"replica {b.base_url} failed" in log and "resting it 60s" in log
    assert states[0].served + states[2].served >= 48 - states[1].served  # the rest was answered elsewhere


@pytest.mark.timeout(60)
def test_a_sick_replica_is_rested_then_probed_and_taken_back():
    sick, well = ServerState(broken=True), ServerState(latency_s=0.01)
    with ChatServer(sick) as a, ChatServer(well) as b:
        cfg = openai_cfg([a.base_url, b.base_url], max_concurrency=2, replica_fail_limit=2, replica_rest_s=0.3)
        texts = [f"The correct answer is: {i}\n" for i in range(20)]

        async def go():
            backend = OpenAIBackend(cfg)
            first = await asyncio.gather(*(backend.complete(ChatRequest(text=t)) for t in texts))
            rested = [dict(s) for s in backend.pool.stats()]
            sick.broken = False
            await asyncio.sleep(0.4)  # the rest ends
            second = await asyncio.gather(*(backend.complete(ChatRequest(text=t)) for t in texts))
            await backend.aclose()
            return first, rested, second, backend.pool.stats()

        first, rested, second, after = asyncio.run(go())
    assert len(first) == len(second) == 20  # every request answered, in both rounds
    assert rested[0]["answered"] == 0 and rested[0]["failed"] == 2  # rested after 2: after a failure, no new request
    assert rested[1]["answered"] == 20
    assert after[0]["answered"] > 1  # the probe succeeded and the replica got its whole cap back


@pytest.mark.timeout(60)
def test_when_every_replica_fails_requests_give_up_instead_of_waiting():
    with ChatServer(ServerState(broken=True)) as a, ChatServer(ServerState(broken=True)) as b:
        cfg = openai_cfg([a.base_url, b.base_url], replica_fail_limit=1, replica_rest_s=600)
        # one replica is rested for 600 s: were the last one rested too, this would wait past the test's timeout
        done, stats = complete_all(cfg, ["The correct answer is: 1\n"] * 4)
    assert all(isinstance(d, GenerationError) and "HTTP 503: replica unavailable" in d.reason for d in done)
    assert sum(s["failed"] for s in stats) == 4 * 4


def test_a_replicated_role_is_written_to_the_run_config(tmp_path):
    cfg = load_config(
        ColdStartConfig, None, ["vlm.backend=openai", "vlm.base_url=[http://a/v1, {base_url: http://b/v1}]"]
    )
    from pipeline.config import dump_yaml, to_dict

    text = dump_yaml(to_dict(cfg))
    (tmp_path / "c.yaml").write_text(text)
    again = load_config(ColdStartConfig, Path(tmp_path / "c.yaml"))
    assert again.vlm.replicas() == cfg.vlm.replicas() == [("http://a/v1", 8), ("http://b/v1", 8)]


def test_a_freed_slot_goes_to_a_later_step_first_then_in_arrival_order():
    from pipeline.generation.replicas import OK, ReplicaPool

    async def go():
        pool = ReplicaPool([("http://a/v1", 1)])
        held = await pool.acquire()
        order = []

        async def wait(name, priority):
            r = await pool.acquire(priority=priority)
            order.append(name)
            await asyncio.sleep(0)
            pool.release(r, OK)

        tasks = [asyncio.create_task(wait(n, p)) for n, p in [("a0", 0), ("b2", 2), ("c0", 0), ("d1", 1)]]
        await asyncio.sleep(0)  # all four queue behind the held slot
        pool.release(held, OK)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(go()) == ["b2", "d1", "a0", "c0"]
