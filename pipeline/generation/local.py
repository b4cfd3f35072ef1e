"""In-process transformers backend for local checkpoints (CPU works; the demo runs both roles on tiny models).

Generation runs in a worker thread, one request at a time (a model is not re-entrant), seeded per request so a
rerun of the same request gives the same text.
"""

from __future__ import annotations

import asyncio
import threading
import time

from PIL import Image

from pipeline.data.images import fit_pixels
from pipeline.generation.base import (
    BackendConfig,
    ChatRequest,
    Completion,
    GenerationError,
    request_seed,
)
from pipeline.grading.blocks import split_think

# torch's RNG is process-wide: two in-process models (the demo's two roles) seeding it at once would take each
# other's draws, so one lock serialises every seeded generation in the process and reruns give the same text.
_RNG_LOCK = threading.Lock()


class TransformersBackend:
    def __init__(self, cfg: BackendConfig):
        import torch

        from pipeline.models.load import load_model_and_processor

        self.cfg = cfg
        self.model_name = cfg.model
        self.model = cfg.model
        self.max_concurrency = 1
        dtype = getattr(torch, cfg.dtype)
        self._model, self._processor = load_model_and_processor(cfg.model, dtype=dtype, device=cfg.device)
        self._model.eval()
        self._lock = _RNG_LOCK
        self._torch = torch

    def _generate(self, request: ChatRequest) -> Completion:
        torch = self._torch
        t0 = time.perf_counter()
        images = [fit_pixels(Image.open(p).convert("RGB"), self.cfg.max_pixels) for p in request.images]
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": request.text}]
        prompt = self._processor.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        inputs = self._processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
        inputs = inputs.to(self.cfg.device)
        n_in = int(inputs["input_ids"].shape[1])
        with self._lock, torch.no_grad():
            torch.manual_seed(request_seed(request, self.cfg.seed))
            out = self._model.generate(
                **inputs,
                max_new_tokens=self.cfg.max_tokens,
                do_sample=self.cfg.temperature > 0,
                temperature=self.cfg.temperature or None,
                top_p=self.cfg.top_p,
            )
        new = out[0, n_in:]
        eos = set(self._model.generation_config.eos_token_id or [])
        finished = bool(len(new)) and int(new[-1]) in eos
        text = self._processor.tokenizer.decode(new, skip_special_tokens=True)
        text, reasoning = split_think(text, None)
        return Completion(
            text=text,
            reasoning=reasoning,
            finish_reason="stop" if finished else "length",
            prompt_tokens=n_in,
            completion_tokens=int(len(new)),
            latency_s=time.perf_counter() - t0,
            attempts=1,
            model=self.model_name,
        )

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        """Several requests in one `generate` call (left-padded), seeded once for the batch from its first key:
        the same batch gives the same texts; greedy decoding (temperature 0) matches one-at-a-time."""
        torch = self._torch
        t0 = time.perf_counter()
        texts, images = [], []
        for r in requests:
            ims = [fit_pixels(Image.open(p).convert("RGB"), self.cfg.max_pixels) for p in r.images]
            content = [{"type": "image"} for _ in ims] + [{"type": "text", "text": r.text}]
            texts.append(
                self._processor.apply_chat_template(
                    [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
                )
            )
            images.append(ims)
        tokenizer = self._processor.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            with_images = [ims for ims in images if ims]
            inputs = self._processor(text=texts, images=with_images or None, padding=True, return_tensors="pt").to(
                self.cfg.device
            )
        finally:
            tokenizer.padding_side = side
        n_in = int(inputs["input_ids"].shape[1])
        with self._lock, torch.no_grad():
            torch.manual_seed(request_seed(requests[0], self.cfg.seed))
            out = self._model.generate(
                **inputs,
                max_new_tokens=self.cfg.max_tokens,
                do_sample=self.cfg.temperature > 0,
                temperature=self.cfg.temperature or None,
                top_p=self.cfg.top_p,
                pad_token_id=tokenizer.pad_token_id,
            )
        eos = set(self._model.generation_config.eos_token_id or [])
        pad = tokenizer.pad_token_id
        latency = (time.perf_counter() - t0) / len(requests)
        done = []
        for i in range(len(requests)):
            new = [int(t) for t in out[i, n_in:]]
            while new and new[-1] == pad and pad not in eos:
                new.pop()
            finished = bool(new) and new[-1] in eos
            text, reasoning = split_think(tokenizer.decode(new, skip_special_tokens=True), None)
            prompt_tokens = int(inputs["attention_mask"][i].sum())
            done.append(
                Completion(
                    text,
                    reasoning,
                    "stop" if finished else "length",
                    prompt_tokens,
                    len(new),
                    latency,
                    1,
                    self.model_name,
                )
            )
        return done

    async def complete_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        try:
            return await asyncio.to_thread(self._generate_batch, requests)
        except (OSError, ValueError, RuntimeError) as e:
            raise GenerationError(f"local generation failed: {type(e).__name__}: {str(e)[:200]}") from None

    async def complete(self, request: ChatRequest) -> Completion:
        try:
            return await asyncio.to_thread(self._generate, request)
        except (OSError, ValueError, RuntimeError) as e:
            raise GenerationError(f"local generation failed: {type(e).__name__}: {str(e)[:200]}") from None

    async def aclose(self) -> None:
        return None
