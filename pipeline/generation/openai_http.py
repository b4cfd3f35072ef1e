"""Any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp, hosted APIs), one server or several
replicas of one model, spoken to directly over aiohttp.

Why not the `openai` client: at a server's concurrency cap, every millisecond the client spends between one answer
and the next request is a millisecond a server slot idles. The SDK spent ~3 ms of CPU per request (request
transformation, pydantic models, httpx) and most of it while holding a slot; this path spends ~1 ms, builds and
encodes the request (images on a worker thread) before taking a slot, and reads the answer's JSON itself.

Retries are ours: 429, 5xx, timeouts, dropped connections, malformed bodies and empty answers are retried with
exponential backoff and full jitter, waiting at least what a Retry-After header asks; when the role has another
live replica the retry goes there at once (see replicas.py). Other 4xx fail at once. Failure reasons are scrubbed
of every secret before anyone sees them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp

from pipeline.errors import ConfigError
from pipeline.generation.base import BackendConfig, ChatRequest, Completion, GenerationError, image_part
from pipeline.generation.replicas import FAILED, NEUTRAL, OK, ReplicaPool, safe_url
from pipeline.grading.blocks import split_think
from pipeline.progress import LOG, scrub, secret_values

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class StreamCut(Exception):
    """A stream that ended without a finish reason."""


class Refused(Exception):
    """The server refused the request itself (a 4xx other than the retryable ones): asking again cannot help."""


class Retryable(Exception):
    """An attempt that failed in a way another attempt may not: `reason` is what to log, `hint` a Retry-After."""

    def __init__(self, reason: str, hint: float | None = None):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


@dataclass
class _Answer:
    text: str = ""
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None


def server_detail(body: str) -> str:
    """What the server said about the error: its JSON `message` (OpenAI and vLLM layouts) or its plain-text body."""
    text = body
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            text = err.get("message") or err.get("detail") or json.dumps(err)
        else:
            text = str(data.get("message") or data.get("detail") or err)
    return " ".join(str(text).split())[:300] or "(no body)"


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


def _reasoning_of(message: dict) -> str | None:
    return message.get("reasoning_content") or message.get("reasoning") or None


def parse_whole(raw: bytes) -> _Answer:
    """A non-streamed chat.completion body."""
    data = json.loads(raw)
    choice = (data.get("choices") or [None])[0]
    msg = (choice or {}).get("message") or {}
    usage = data.get("usage") or {}
    return _Answer(
        text=msg.get("content") or "",
        reasoning=_reasoning_of(msg),
        finish_reason=(choice or {}).get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        model=data.get("model"),
    )


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) names for `url`, as the openai client
    would use it."""
    parts = urlsplit(url)
    if proxy_bypass(parts.hostname or ""):
        return None
    return getproxies().get(parts.scheme)


class OpenAIBackend:
    def __init__(self, cfg: BackendConfig):
        self.cfg = cfg
        self.model = cfg.model
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        if cfg.api_key_env and not key:
            raise ConfigError(f"environment variable {cfg.api_key_env} (named by api_key_env) is not set")
        self._secrets = secret_values([cfg.api_key_env] if cfg.api_key_env else [])
        self._headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.pool = ReplicaPool(cfg.replicas(), cfg.replica_fail_limit, cfg.replica_rest_s)
        self.max_concurrency = self.pool.capacity
        self._session: aiohttp.ClientSession | None = None
        self._proxies = {url: env_proxy(url) for url, _ in cfg.replicas()}
        # like the openai client: the whole timeout for connecting, the same between two reads (so a long stream
        # lives as long as it keeps talking)
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.timeout_s, sock_read=cfg.timeout_s)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop, where aiohttp wants it
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)  # the pool bounds the requests
            # proxies from the environment are looked up here, once: aiohttp's trust_env would do it (and a
            # netrc lookup) on a worker thread for every request, two thread hops while a slot is held
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    def _body(self, request: ChatRequest) -> bytes:
        if request.images:
            parts = [image_part(p, self.cfg) for p in request.images]
            messages = [{"role": "user", "content": parts + [{"type": "text", "text": request.text}]}]
        else:
            messages = [{"role": "user", "content": request.text}]
        body = {"model": self.model, "messages": messages}
        body.update({k: v for k, v in self.cfg.sampling().items() if v is not None})
        if self.cfg.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        body.update(self.cfg.extra_body or {})
        return json.dumps(body).encode()

    def _backoff(self, attempt: int, hint: float | None) -> float:
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
        return max(delay, hint) if hint is not None else delay

    async def complete(self, request: ChatRequest) -> Completion:
        # resizing and encoding images is CPU work: on the loop it would hold up every other request's answer
        body = await asyncio.to_thread(self._body, request) if request.images else self._body(request)
        session = self._session_now()
        last, replica = "no attempt made", None
        several = len(self.pool.replicas) > 1
        for attempt in range(self.cfg.max_retries + 1):
            replica = await self.pool.acquire(avoid=replica, priority=request.priority)
            outcome, hint = FAILED, None
            try:
                t0 = time.perf_counter()  # the request's own latency, not the wait for a slot
                answer = await (self._streamed if self.cfg.stream else self._whole)(session, replica.url, body)
                latency = time.perf_counter() - t0
                text, reasoning = split_think(answer.text, answer.reasoning)
                if not text.strip() and not (reasoning or "").strip():
                    last = "empty content in the response"
                else:
                    outcome = OK
                    return Completion(
                        text=text,
                        reasoning=reasoning,
                        finish_reason=answer.finish_reason or "stop",
                        prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens,
                        latency_s=latency,
                        attempts=attempt + 1,
                        model=answer.model or self.model,
                    )
            except Refused as e:
                outcome = NEUTRAL  # the request's fault, not the server's
                raise self._failure(request, f"{e} (not retried: the server refused the request)", attempt) from None
            except Retryable as e:
                last, hint = e.reason, e.hint
            except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11, two before
                last = f"timed out after {self.cfg.timeout_s:g}s"
            except (aiohttp.ClientError, StreamCut, ConnectionError) as e:  # refused, reset, cut midway
                last = f"connection error: {type(e).__name__}"
            except (ValueError, KeyError, AttributeError, TypeError, IndexError) as e:
                last = f"malformed response: {type(e).__name__}: {str(e)[:120]}"
            except BaseException:
                outcome = NEUTRAL  # cancelled: says nothing about the server
                raise
            finally:
                self.pool.release(replica, outcome)
            if attempt < self.cfg.max_retries:
                elsewhere = several and self.pool.others_live(replica)
                # backoff relieves a struggling server; another replica is not struggling
                wait = 0.0 if elsewhere else self._backoff(attempt, hint)
                LOG.warning(
                    "%s: attempt %d/%d failed%s (%s); retrying in %.2fs%s",
                    request.key,
                    attempt + 1,
                    self.cfg.max_retries + 1,
                    f" at {safe_url(replica.url)}" if several else "",
                    scrub(last, self._secrets),
                    wait,
                    " on another replica" if elsewhere else "",
                )
                if wait:
                    await asyncio.sleep(wait)
        raise self._failure(
            request, f"gave up after {self.cfg.max_retries + 1} attempts; last: {last}", self.cfg.max_retries
        )

    async def _post(self, session: aiohttp.ClientSession, base_url: str, body: bytes) -> aiohttp.ClientResponse:
        resp = await session.post(
            base_url.rstrip("/") + "/chat/completions",
            data=body,
            headers=self._headers,
            allow_redirects=False,
            proxy=self._proxies.get(base_url),
        )
        if resp.status >= 300:
            detail = server_detail(await resp.text(errors="replace"))
            resp.release()
            reason = f"HTTP {resp.status}: {detail}"
            if resp.status in RETRYABLE_STATUS:
                raise Retryable(reason, retry_after_s(resp.headers))
            raise Refused(reason)
        return resp

    async def _whole(self, session: aiohttp.ClientSession, base_url: str, body: bytes) -> _Answer:
        async with await self._post(session, base_url, body) as resp:
            raw = await resp.read()
        return parse_whole(raw)

    async def _streamed(self, session: aiohttp.ClientSession, base_url: str, body: bytes) -> _Answer:
        """The same answer received as server-sent events: content and reasoning deltas joined, the finish reason
        from the last choice, token counts from the usage chunk. A stream that ends without a finish reason was
        cut: it is retried like a dropped connection."""
        text, reasoning, answer = [], [], _Answer()
        async with await self._post(session, base_url, body) as resp:
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments (keep-alives), event names
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise Retryable(f"server error mid-stream: {server_detail(json.dumps(chunk))}")
                answer.model = chunk.get("model") or answer.model
                if chunk.get("usage"):
                    answer.prompt_tokens = chunk["usage"].get("prompt_tokens") or 0
                    answer.completion_tokens = chunk["usage"].get("completion_tokens") or 0
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text.append(delta.get("content") or "")
                    reasoning.append(_reasoning_of(delta) or "")
                    answer.finish_reason = choice.get("finish_reason") or answer.finish_reason
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
        if len(self.pool.replicas) > 1:
            LOG.info("%s replicas: %s", self.model, self.pool.stats())
        if self._session is not None:
            await self._session.close()
            self._session = None
