"""Any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp, hosted APIs) via the async client.

Retries are ours, not the client's: 429, 5xx, timeouts, dropped connections, malformed bodies and empty answers
are retried with exponential backoff and full jitter, waiting at least what a Retry-After header asks. Other
4xx fail at once. Failure reasons are scrubbed of every secret before anyone sees them.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import os
import random
import time
from dataclasses import dataclass

import openai

from pipeline.errors import ConfigError
from pipeline.generation.base import BackendConfig, ChatRequest, Completion, GenerationError, image_part
from pipeline.grading.blocks import split_think
from pipeline.progress import LOG, scrub, secret_values

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's transport errors (openai uses httpx or, in newer releases, httpx2): a streamed answer's
    connection failing midway raises them while the chunks are read."""
    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


class StreamCut(Exception):
    """A stream that ended without a finish reason."""


@dataclass
class _Answer:
    text: str = ""
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None


def server_detail(e: openai.APIStatusError) -> str:
    """What the server said about the error: its JSON `message` (OpenAI and vLLM layouts) or its plain-text
    body; the client's own text is only "Error code: N"."""
    body = e.body
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail") or json.dumps(body)
    text = str(body or "").strip() or str(e.message)
    return " ".join(text.split())[:300]


def retry_after_s(headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class OpenAIBackend:
    def __init__(self, cfg: BackendConfig):
        self.cfg = cfg
        self.model = cfg.model
        self.max_concurrency = cfg.max_concurrency
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        if cfg.api_key_env and not key:
            raise ConfigError(f"environment variable {cfg.api_key_env} (named by api_key_env) is not set")
        self._secrets = secret_values([cfg.api_key_env] if cfg.api_key_env else [])
        self.client = openai.AsyncOpenAI(
            base_url=cfg.base_url, api_key=key or "EMPTY", max_retries=0, timeout=cfg.timeout_s
        )
        self._sem = asyncio.Semaphore(cfg.max_concurrency)

    def _messages(self, request: ChatRequest) -> list[dict]:
        if not request.images:
            return [{"role": "user", "content": request.text}]
        parts = [image_part(p, self.cfg) for p in request.images]
        return [{"role": "user", "content": parts + [{"type": "text", "text": request.text}]}]

    def _backoff(self, attempt: int, hint: float | None) -> float:
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
        return max(delay, hint) if hint is not None else delay

    async def complete(self, request: ChatRequest) -> Completion:
        messages = self._messages(request)
        sampling = {k: v for k, v in self.cfg.sampling().items() if v is not None}
        last = "no attempt made"
        for attempt in range(self.cfg.max_retries + 1):
            hint = None
            try:
                async with self._sem:
                    t0 = time.perf_counter()  # the request's own latency, not the wait for a slot
                    answer = await (self._streamed if self.cfg.stream else self._whole)(messages, sampling)
                text, reasoning = split_think(answer.text, answer.reasoning)
                if not text.strip() and not (reasoning or "").strip():
                    last = "empty content in the response"
                else:
                    return Completion(
                        text=text,
                        reasoning=reasoning,
                        finish_reason=answer.finish_reason or "stop",
                        prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens,
                        latency_s=time.perf_counter() - t0,
                        attempts=attempt + 1,
                        model=answer.model or self.model,
                    )
            except openai.APIStatusError as e:
                last = f"HTTP {e.status_code}: {server_detail(e)}"
                if e.status_code not in RETRYABLE_STATUS:
                    raise self._failure(
                        request, f"{last} (not retried: the server refused the request)", attempt
                    ) from None
                hint = retry_after_s(e.response.headers)
            except openai.APITimeoutError:
                last = f"timed out after {self.cfg.timeout_s:g}s"
            except (openai.APIConnectionError, StreamCut, *TRANSPORT_ERRORS) as e:  # a stream can die midway
                last = f"connection error: {type(e.__cause__ or e).__name__}"
            except (openai.APIResponseValidationError, ValueError, KeyError, AttributeError, TypeError) as e:
                last = f"malformed response: {type(e).__name__}: {str(e)[:120]}"
            if attempt < self.cfg.max_retries:
                wait = self._backoff(attempt, hint)
                LOG.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.2fs",
                    request.key,
                    attempt + 1,
                    self.cfg.max_retries + 1,
                    scrub(last, self._secrets),
                    wait,
                )
                await asyncio.sleep(wait)
        raise self._failure(
            request, f"gave up after {self.cfg.max_retries + 1} attempts; last: {last}", self.cfg.max_retries
        )

    async def _whole(self, messages: list[dict], sampling: dict) -> _Answer:
        resp = await self.client.chat.completions.create(
            model=self.model, messages=messages, extra_body=self.cfg.extra_body or None, **sampling
        )
        choice = resp.choices[0] if resp.choices else None
        msg = choice.message if choice else None
        extra = (msg.model_extra or {}) if msg else {}
        usage = resp.usage
        return _Answer(
            text=(msg.content or "") if msg else "",
            reasoning=extra.get("reasoning_content") or extra.get("reasoning") or None,
            finish_reason=choice.finish_reason if choice else None,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            model=resp.model,
        )

    async def _streamed(self, messages: list[dict], sampling: dict) -> _Answer:
        """The same answer received as server-sent events: content and reasoning deltas joined, the finish reason
        from the last choice, token counts from the usage chunk. A stream that ends without a finish reason was
        cut: it is retried like a dropped connection."""
        stream = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            extra_body=self.cfg.extra_body or None,
            stream=True,
            stream_options={"include_usage": True},
            **sampling,
        )
        text, reasoning, answer = [], [], _Answer()
        async for chunk in stream:
            answer.model = chunk.model or answer.model
            if chunk.usage:
                answer.prompt_tokens = chunk.usage.prompt_tokens or 0
                answer.completion_tokens = chunk.usage.completion_tokens or 0
            for choice in chunk.choices:
                delta = choice.delta
                text.append(delta.content or "")
                extra = delta.model_extra or {}
                reasoning.append(extra.get("reasoning_content") or extra.get("reasoning") or "")
                answer.finish_reason = choice.finish_reason or answer.finish_reason
        if answer.finish_reason is None:
            raise StreamCut("the stream ended before the answer did")
        answer.text, answer.reasoning = "".join(text), "".join(reasoning) or None
        return answer

    def _failure(self, request: ChatRequest, reason: str, attempt: int) -> GenerationError:
        """Log why the request failed for good (the server's own words, secrets scrubbed); the error to raise."""
        reason = scrub(reason, self._secrets)
        LOG.error("%s: failed for good: %s", request.key, reason)
        return GenerationError(reason, attempt + 1)

    async def aclose(self) -> None:
        await self.client.close()
