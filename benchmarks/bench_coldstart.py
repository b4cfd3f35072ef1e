"""Cold-start generation throughput against loopback chat servers (each in its own process).

1. Saturation: one endpoint with a fixed latency and a concurrency cap; achieved requests/s divided by the ideal
   cap / latency (target >= 0.95), with the client's concurrency equal to the cap and at twice the cap, and how
   throughput grows with the client's concurrency (a curve). `busy` is the server's own count: slot-seconds spent
   serving / (cap x wall time).
2. Replicas: four servers of different speeds behind one role, each at its own cap; requests/s divided by the summed
   ideal. Then the same with the fastest one killed (SIGKILL) mid-run: samples lost (must be 0), the requests it had in
   flight (asked again elsewhere), and requests/s after the death divided by the ideal of the three left.
3. Streaming vs step-by-step: a VLM endpoint and a reasoner endpoint; the same samples through the three steps
   streaming (a sample moves on as soon as it can) and staged (every sample finishes a step before any starts the
   next); the speed-up is printed.

    python -m benchmarks.bench_coldstart [--n 800] [--latency 0.05] [--cap 8] [--samples 120]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import record_curve, save_result

ROOT = Path(__file__).resolve().parent.parent
REPLICAS = "0.05:8,0.075:8,0.1:6,0.15:4"  # latency_s:cap of each replica


@contextlib.contextmanager
def server(latency: float, cap: int):
    """A chat server process; yields (base_url, process)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "chat_server.py"), "--latency", str(latency), "--cap", str(cap)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        proc.kill()
        proc.wait()


def server_stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as resp:
        return json.loads(resp.read())


def _teacher(base_url, concurrency: int, **kw):
    from pipeline.generation import BackendConfig
    from pipeline.generation.openai_http import OpenAIBackend

    cfg = BackendConfig(backend="openai", base_url=base_url, model="m", max_concurrency=concurrency, **kw)
    return OpenAIBackend(cfg)


def _requests(n: int):
    from pipeline.generation import ChatRequest

    return [ChatRequest(text=f"The correct answer is: {i}\n", key=f"r{i}") for i in range(n)]


def saturation(n: int, latency: float, cap: int, concurrency: int) -> dict:
    async def go(base_url):
        teacher = _teacher(base_url, concurrency)
        reqs = _requests(n)
        await asyncio.gather(*(teacher.complete(r) for r in reqs[:cap]))  # warm the connection pool
        busy0 = (await asyncio.to_thread(server_stats, base_url))["busy_s"]
        t0 = time.perf_counter()
        await asyncio.gather(*(teacher.complete(r) for r in reqs))
        dt = time.perf_counter() - t0
        busy = (await asyncio.to_thread(server_stats, base_url))["busy_s"] - busy0
        await teacher.aclose()
        return dt, busy

    with server(latency, cap) as (url, _):
        dt, busy = asyncio.run(go(url))
    achieved, ideal = n / dt, min(cap, concurrency) / latency
    return {
        "requests": n,
        "latency_s": latency,
        "cap": cap,
        "client_concurrency": concurrency,
        "achieved_per_s": round(achieved, 1),
        "ideal_per_s": round(ideal, 1),
        "efficiency": round(achieved / ideal, 3),
        "busy": round(busy / (min(cap, concurrency) * dt), 3),
    }


def _parse_replicas(spec: str) -> list[tuple[float, int]]:
    return [(float(lat), int(cap)) for lat, cap in (item.split(":") for item in spec.split(","))]


def replicas(n: int, spec: list[tuple[float, int]], kill_at: float | None = None) -> dict:
    """`n` requests over replicas of (latency, cap), client concurrency = each cap. With `kill_at`, the fastest
    replica is SIGKILLed once that share of the requests is answered."""
    ideal = sum(cap / lat for lat, cap in spec)
    fastest = max(range(len(spec)), key=lambda i: spec[i][1] / spec[i][0])
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(server(lat, cap)) for lat, cap in spec]
        urls = [{"base_url": url, "max_concurrency": cap} for (url, _), (_, cap) in zip(servers, spec, strict=True)]

        async def go():
            # backoff is long on purpose: a request the dead replica held must go elsewhere at once, not wait
            teacher = _teacher(urls, 1, backoff_base_s=5.0)
            await asyncio.gather(*(teacher.complete(r) for r in _requests(len(urls) * 8)))  # warm the pools
            done, death = [], {}

            async def one(req):
                completion = await teacher.complete(req)
                done.append((time.perf_counter(), completion.attempts))
                if kill_at is not None and not death and len(done) >= kill_at * n:
                    death.update(t=time.perf_counter(), in_flight=teacher.pool.replicas[fastest].in_flight)
                    servers[fastest][1].kill()

            t0 = time.perf_counter()
            results = await asyncio.gather(*(one(r) for r in _requests(n)), return_exceptions=True)
            t_end = time.perf_counter()
            await teacher.aclose()
            lost = sum(isinstance(r, Exception) for r in results)
            return t0, t_end, done, death, lost, teacher.pool.stats()

        t0, t_end, done, death, lost, stats = asyncio.run(go())
    row = {
        "requests": n,
        "replicas": [{"latency_s": lat, "cap": cap} for lat, cap in spec],
        "ideal_per_s": round(ideal, 1),
        "achieved_per_s": round(len(done) / (t_end - t0), 1),
        "efficiency": round(len(done) / (t_end - t0) / ideal, 3),
        "answered_per_replica": [s["answered"] for s in stats],
        "lost": lost,
    }
    if kill_at is not None:
        left = ideal - spec[fastest][1] / spec[fastest][0]
        after = sum(1 for t, _ in done if t > death["t"])
        row.update(
            killed=fastest,
            killed_at_s=round(death["t"] - t0, 2),
            in_flight_at_death=death["in_flight"],
            retried=sum(a - 1 for _, a in done),
            ideal_after_per_s=round(left, 1),
            efficiency_before=round((len(done) - after) / (death["t"] - t0) / ideal, 3),
            efficiency_after=round(after / (t_end - death["t"]) / left, 3),
        )
    return row


def streaming_vs_staged(n: int, latency: float, cap: int) -> dict:
    from coldstart.runner import Generation
    from coldstart.steps import load_steps
    from coldstart.store import StepStore
    from pipeline.data.demo_data import generate_demo_data
    from pipeline.data.manifest import read_manifest

    tmp = Path(tempfile.mkdtemp())
    generate_demo_data(tmp / "demo", n_train=n, n_test=0, seed=0)
    result = read_manifest(tmp / "demo" / "manifest_train.yaml")
    steps = load_steps(
        {
            "pseudo_cot": str(ROOT / "prompts/pseudo_cot.txt"),
            "description": str(ROOT / "prompts/describe_image.txt"),
            "reasoning": str(ROOT / "prompts/reason.txt"),
        }
    )
    times = {}
    with server(latency, cap) as (vlm_url, _), server(latency, cap) as (reasoner_url, _):
        for mode in ("staged", "stream"):

            async def go(mode=mode):
                teachers = {
                    role: _teacher(url, cap, max_pixels=64 * 64)
                    for role, url in (("vlm", vlm_url), ("reasoner", reasoner_url))
                }
                stores = {s.name: StepStore(tmp / mode / f"{s.name}.jsonl", fsync=False) for s in steps}
                gen = Generation(steps, teachers, stores, {"demo": result.manifest.image_root})
                t0 = time.perf_counter()
                await gen.run(result.samples, mode)
                dt = time.perf_counter() - t0
                for t in teachers.values():
                    await t.aclose()
                assert all(r.failed is None for r in gen.results.values())
                return dt

            times[mode] = asyncio.run(go())
    # staged: the VLM does 2n requests, then the reasoner n, one after the other; streaming overlaps them
    return {
        "samples": n,
        "latency_s": latency,
        "cap_per_endpoint": cap,
        "staged_s": round(times["staged"], 2),
        "stream_s": round(times["stream"], 2),
        "speedup": round(times["staged"] / times["stream"], 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--cap", type=int, default=8)
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--replicas", default=REPLICAS, help="latency_s:cap of each replica, comma-separated")
    ap.add_argument("--replica-requests", type=int, default=2400)
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    sats = [saturation(args.n, args.latency, args.cap, args.cap * factor) for factor in (1, 2)]
    for sat in sats:
        print(  # noqa: T201
            f"saturation: server cap {sat['cap']}, latency {sat['latency_s']}s, client concurrency "
            f"{sat['client_concurrency']}: {sat['achieved_per_s']}/s of {sat['ideal_per_s']}/s ideal -> "
            f"efficiency {sat['efficiency']} (target >= 0.95; server busy {sat['busy']})"
        )
    curve = []
    for c in (1, 2, 4, 8, 12, 16, 32):
        n = max(80, int(min(c, args.cap) / args.latency * 2.0))  # about 2 s each
        curve.append(saturation(n, args.latency, args.cap, c))
    record_curve(
        "cold start requests per s vs client concurrency",
        "concurrency",
        "requests/s",
        [(s["client_concurrency"], s["achieved_per_s"]) for s in curve],
        note=f"one server, cap {args.cap}, latency {args.latency}s: ideal min(c, cap)/latency",
    )
    record_curve(
        "cold start efficiency vs client concurrency",
        "concurrency",
        "achieved / ideal",
        [(s["client_concurrency"], s["efficiency"]) for s in curve],
    )
    spec = _parse_replicas(args.replicas)
    rep = replicas(args.replica_requests, spec)
    died = replicas(args.replica_requests, spec, kill_at=0.4)
    print(  # noqa: T201
        f"replicas {args.replicas}: {rep['achieved_per_s']}/s of {rep['ideal_per_s']}/s summed ideal -> efficiency "
        f"{rep['efficiency']} (target >= 0.95); answered per replica {rep['answered_per_replica']}"
    )
    print(  # noqa: T201
        f"replica {died['killed']} killed at {died['killed_at_s']}s with {died['in_flight_at_death']} in flight: "
        f"{died['lost']} lost, {died['retried']} asked again elsewhere; efficiency before {died['efficiency_before']}, "
        f"after {died['efficiency_after']} of the {died['ideal_after_per_s']}/s left (target >= 0.95)"
    )
    st = streaming_vs_staged(args.samples, args.latency, args.cap)
    print(  # noqa: T201
        f"streaming vs staged, {st['samples']} samples on two endpoints: staged {st['staged_s']}s, "
        f"streaming {st['stream_s']}s -> speed-up x{st['speedup']}"
    )
    load_end = os.getloadavg()[0]
    print(f"load average at start {load:.1f}, at end {load_end:.1f} (2 cores: above ~1.5 the figures sag)")  # noqa: T201
    save_result(
        args.out,
        "coldstart",
        {
            "saturation": sats,
            "concurrency_curve": curve,
            "replicas": rep,
            "replica_killed": died,
            "streaming": st,
            "load_average": [round(load, 2), round(load_end, 2)],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
