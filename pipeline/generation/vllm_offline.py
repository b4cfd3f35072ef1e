"""Offline vLLM (`vllm.LLM`) on the GPU node itself, batched. vLLM is imported only when this backend is chosen.

Requests arriving from the streaming pipeline are gathered into batches of up to `batch_size` (or whatever has
arrived after a short wait) and run with one `LLM.chat` call in a worker thread, so the GPU sees large batches
while the pipeline stays streaming.
"""

from __future__ import annotations

import asyncio
import time

from pipeline.errors import Vr1Error
from pipeline.generation.base import (
    BackendConfig,
    ChatRequest,
    Completion,
    GenerationError,
    image_part,
    request_seed,
)
from pipeline.grading.blocks import split_think

BATCH_WAIT_S = 0.05


class VLLMBackend:
    def __init__(self, cfg: BackendConfig):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise Vr1Error(f"backend vllm needs the vllm package on this machine ({e})") from None
        self.cfg = cfg
        self.model = cfg.model
        self.max_concurrency = cfg.batch_size
        kwargs = {"max_model_len": cfg.max_model_len} if cfg.max_model_len else {}
        self._llm = LLM(
            model=cfg.model,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            seed=cfg.seed or 0,
            limit_mm_per_prompt={"image": 8},
            **kwargs,
        )
        self._params = SamplingParams
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def _conversation(self, request: ChatRequest) -> list[dict]:
        parts = [image_part(p, self.cfg) for p in request.images]
        return [{"role": "user", "content": parts + [{"type": "text", "text": request.text}]}]

    def _run_batch(self, requests: list[ChatRequest]):
        params = [
            self._params(
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                max_tokens=self.cfg.max_tokens,
                seed=request_seed(r, self.cfg.seed),
            )
            for r in requests
        ]
        return self._llm.chat([self._conversation(r) for r in requests], params, use_tqdm=False)

    async def _serve(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < self.cfg.batch_size:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(0.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    break
            t0 = time.perf_counter()
            try:
                outputs = await asyncio.to_thread(self._run_batch, [r for r, _ in batch])
            except Exception as e:  # noqa: BLE001 - one failed batch fails its requests, not the server loop
                for _, fut in batch:
                    fut.set_exception(GenerationError(f"vllm batch failed: {type(e).__name__}: {str(e)[:200]}"))
                continue
            latency = time.perf_counter() - t0
            for (_, fut), out in zip(batch, outputs, strict=True):
                gen = out.outputs[0]
                text, reasoning = split_think(gen.text, None)
                fut.set_result(
                    Completion(
                        text=text,
                        reasoning=reasoning,
                        finish_reason=gen.finish_reason or "stop",
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(gen.token_ids),
                        latency_s=latency,
                        attempts=1,
                        model=self.model,
                    )
                )

    async def complete(self, request: ChatRequest) -> Completion:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._serve())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((request, fut))
        return await fut

    async def aclose(self) -> None:
        if self._worker:
            self._worker.cancel()
