"""Runs the three generation steps over the samples, streaming: each sample moves on as soon as its previous step
finishes, so the VLM and the reasoner endpoints are busy at the same time, each under its own concurrency limit.
Every answer is recorded in the step's store before anything else happens with it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from coldstart.steps import Step
from coldstart.store import StepStore, record_key
from pipeline.data.schema import Sample
from pipeline.generation import ChatBackend, GenerationError
from pipeline.progress import progress


@dataclass
class RoleStats:
    """One role's work in one invocation. `generating_s` is the servers' time on the answers (each answered
    request's own latency); `waiting_s` is the rest of the time spent in requests: queueing for a slot, backoff
    between retries, attempts that failed."""

    requests: int = 0
    reused: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generating_s: float = 0.0
    waiting_s: float = 0.0


@dataclass
class SampleResult:
    outputs: dict[str, dict] = field(default_factory=dict)
    provenance: dict[str, dict] = field(default_factory=dict)
    failed: dict | None = None  # {"step": …, "reason": …}


def uid(sample: Sample) -> str:
    return f"{sample.source}/{sample.id}"


class Generation:
    def __init__(
        self,
        steps: list[Step],
        teachers: dict[str, ChatBackend],
        stores: dict[str, StepStore],
        image_roots: dict[str, Path],
        retry_failed: bool = True,
    ):
        self.steps = steps
        self.teachers = teachers
        self.stores = stores
        self.image_roots = image_roots
        self.retry_failed = retry_failed
        self.stats = {role: RoleStats() for role in teachers}
        self.results: dict[str, SampleResult] = {}
        self.bars = {}

    async def _step(self, sample: Sample, step: Step) -> bool:
        res = self.results[uid(sample)]
        teacher = self.teachers[step.role]
        stats = self.stats[step.role]
        request = step.build(sample, res.outputs, self.image_roots[sample.source])
        key = record_key(
            uid(sample),
            step.name,
            step.prompt.hash,
            teacher.model,
            step.request_hash(request, teacher.cfg.request_settings()),
        )
        store = self.stores[step.name]
        rec = store.get_ok(key) or (None if self.retry_failed else store.failed.get(key))
        if rec is not None:
            stats.reused += 1
        else:
            base = {
                "key": key,
                "sample_id": sample.id,
                "source": sample.source,
                "step": step.name,
                "prompt_hash": step.prompt.hash,
                "model": teacher.model,
            }
            t0 = time.perf_counter()
            try:
                completion = await teacher.complete(request)
            except GenerationError as e:
                rec = {**base, "status": "failed", "error": e.reason, "attempts": e.attempts}
                stats.failed += 1
                stats.retries += max(0, e.attempts - 1)
            else:
                prov = {k: v for k, v in completion.as_dict().items() if k not in ("text", "reasoning")}
                prov.update(prompt=str(step.prompt.path), prompt_hash=step.prompt.hash, sampling=teacher.cfg.sampling())
                rec = {**base, "status": "ok", "output": step.parse(completion), "provenance": prov}
                stats.requests += 1
                stats.retries += completion.attempts - 1
                stats.prompt_tokens += completion.prompt_tokens
                stats.completion_tokens += completion.completion_tokens
                stats.generating_s += completion.latency_s
            in_request = time.perf_counter() - t0
            stats.waiting_s += max(0.0, in_request - (completion.latency_s if rec["status"] == "ok" else 0.0))
            store.append(rec)
        self.bars[step.name].update(1)
        if rec["status"] != "ok":
            res.failed = {"step": step.name, "reason": rec["error"]}
            return False
        res.outputs[step.name] = rec["output"]
        res.provenance[step.name] = rec["provenance"]
        return True

    async def _chain(self, sample: Sample) -> None:
        for i, step in enumerate(self.steps):
            if not await self._step(sample, step):
                for later in self.steps[i + 1 :]:
                    self.bars[later.name].update(1)  # nothing more will happen to this sample
                return

    async def _pool(self, samples: list[Sample], fn, width: int) -> None:
        it = iter(samples)

        async def worker():
            for sample in it:  # shared iterator: each sample goes to exactly one worker
                await fn(sample)

        await asyncio.gather(*(worker() for _ in range(max(1, min(width, len(samples))))))

    async def run(self, samples: list[Sample], mode: str = "stream", max_in_flight: int = 0) -> None:
        self.results = {uid(s): SampleResult() for s in samples}
        width = max_in_flight or 2 * sum(t.max_concurrency for t in self.teachers.values())
        self.bars = {
            st.name: progress(total=len(samples), desc=f"{st.name:<11}", position=i) for i, st in enumerate(self.steps)
        }
        try:
            if mode == "stream":
                await self._pool(samples, self._chain, width)
            else:  # staged: every sample finishes a step before any starts the next
                for step in self.steps:
                    live = [s for s in samples if self.results[uid(s)].failed is None]
                    for _ in range(len(samples) - len(live)):
                        self.bars[step.name].update(1)

                    async def one(sample, step=step):
                        await self._step(sample, step)

                    await self._pool(live, one, width)
        finally:
            for bar in self.bars.values():
                bar.close()
