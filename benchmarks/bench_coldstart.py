"""Cold-start generation throughput against loopback chat servers (each in its own process).

1. Saturation: one endpoint with a fixed latency and a concurrency cap; achieved requests/s divided by the
   ideal cap / latency (target >= 0.9), with the client's concurrency equal to the cap and at twice the cap.
2. Streaming vs step-by-step: a VLM endpoint and a reasoner endpoint; the same samples through the three steps
   streaming (a sample moves on as soon as it can) and staged (every sample finishes a step before any starts the
   next); the speed-up is printed.

    python -m benchmarks.bench_coldstart [--n 300] [--latency 0.05] [--cap 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save_result

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def server(latency: float, cap: int):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "chat_server.py"), "--latency", str(latency), "--cap", str(cap)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.kill()
        proc.wait()


def saturation(n: int, latency: float, cap: int, client_factor: int = 2) -> dict:
    from pipeline.generation import BackendConfig, ChatRequest
    from pipeline.generation.openai_http import OpenAIBackend

    async def go(base_url):
        # the client keeps more requests open than the server serves at once (as one should with vLLM, which
        # queues), so the server's slots never idle while the client handles a response
        teacher = OpenAIBackend(
            BackendConfig(backend="openai", base_url=base_url, model="m", max_concurrency=cap * client_factor)
        )
        reqs = [ChatRequest(text=f"The correct answer is: {i}\n") for i in range(n)]
        await asyncio.gather(*(teacher.complete(r) for r in reqs[:cap]))  # warm the connection pool
        t0 = time.perf_counter()
        await asyncio.gather(*(teacher.complete(r) for r in reqs))
        dt = time.perf_counter() - t0
        await teacher.aclose()
        return dt

    with server(latency, cap) as url:
        dt = asyncio.run(go(url))
    achieved, ideal = n / dt, cap / latency
    return {
        "requests": n,
        "latency_s": latency,
        "cap": cap,
        "client_concurrency": cap * client_factor,
        "achieved_per_s": round(achieved, 1),
        "ideal_per_s": round(ideal, 1),
        "efficiency": round(achieved / ideal, 3),
    }


def streaming_vs_staged(n: int, latency: float, cap: int) -> dict:
    from coldstart.runner import Generation
    from coldstart.steps import load_steps
    from coldstart.store import StepStore
    from pipeline.data.demo_data import generate_demo_data
    from pipeline.data.manifest import read_manifest
    from pipeline.generation import BackendConfig
    from pipeline.generation.openai_http import OpenAIBackend

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
    with server(latency, cap) as vlm_url, server(latency, cap) as reasoner_url:
        for mode in ("staged", "stream"):

            async def go(mode=mode):
                teachers = {
                    role: OpenAIBackend(
                        BackendConfig(
                            backend="openai", base_url=url, model=role, max_concurrency=cap, max_pixels=64 * 64
                        )
                    )
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
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args(argv)
    sats = [saturation(args.n, args.latency, args.cap, factor) for factor in (1, 2)]
    for sat in sats:
        print(  # noqa: T201
            f"saturation: server cap {sat['cap']}, latency {sat['latency_s']}s, client concurrency "
            f"{sat['client_concurrency']}: {sat['achieved_per_s']}/s of {sat['ideal_per_s']}/s ideal -> "
            f"efficiency {sat['efficiency']} (target >= 0.9)"
        )
    st = streaming_vs_staged(args.samples, args.latency, args.cap)
    print(  # noqa: T201
        f"streaming vs staged, {st['samples']} samples on two endpoints: staged {st['staged_s']}s, "
        f"streaming {st['stream_s']}s -> speed-up x{st['speedup']}"
    )
    save_result(args.out, "coldstart", {"saturation": sats, "streaming": st})
    return 0


if __name__ == "__main__":
    sys.exit(main())
