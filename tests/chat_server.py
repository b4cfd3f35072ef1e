"""A chat-completions server on loopback for tests and benchmarks: real HTTP (aiohttp), the OpenAI response
shape, deterministic answers, a latency, a concurrency cap it measures (GET /stats: answers served, busy
slot-seconds), injectable faults, and the ways a replica goes away: it dies (`kill()`, `die_after`: connections
refused, the requests it holds dropped) or falls sick (`broken`: 503 to everything).

The answers carry the ground truth through the modality-bridging chain the way a good teacher would: the
pseudo-CoT states the answer given in its prompt, the description repeats a hint of it, and the reasoner (which
sees only the description) finds it there and answers `<answer>X</answer>`, its thinking in `reasoning_content`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

FAULTS = ("429", "500", "hang", "malformed", "empty", "drop")
WORDS = (
    "circle",
    "square",
    "count",
    "left",
    "right",
    "top",
    "bottom",
    "bar",
    "angle",
    "edge",
    "red",
    "blue",
    "green",
    "label",
    "axis",
    "value",
    "line",
    "shape",
    "corner",
    "middle",
    "row",
    "column",
    "pair",
    "total",
)


@dataclass
class ServerState:
    latency_s: float = 0.0
    fault_rate: float = 0.0  # share of first attempts that fail (second attempts at half the rate, then none)
    faults: tuple[str, ...] = FAULTS
    hang_s: float = 5.0
    always_fail_marker: str = "ALWAYS_FAIL"
    reject_marker: str = "REJECT_400"  # answered 400 with a plain-text body, as some proxies and servers do
    streamed: int = 0  # requests answered as a stream
    stream_cut: int = 0  # cut each streamed answer this many times mid-stream before letting it through
    attempts_streamed: Counter = field(default_factory=Counter)
    cap: int | None = None  # max requests served at once (more wait: a server's batch limit)
    attempts: Counter = field(default_factory=Counter)
    served: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    auth_headers: set = field(default_factory=set)
    fault_log: Counter = field(default_factory=Counter)
    busy_s: float = 0.0  # slot-seconds spent serving (the latency of every request that held a slot)
    dead: bool = False  # killed: every connection is dropped, none accepted
    die_after: int | None = None  # die when this many requests have arrived (those in flight die with it)
    broken: bool = False  # answer every request 503 (a sick replica that still accepts connections)
    arrived: int = 0
    listener: object = None  # the listening socket's server, closed when it dies
    transports: set = field(default_factory=set)  # connections with a request in the handler, for kill()


def _text_of(messages: list[dict]) -> str:
    content = messages[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def answer_for(prompt: str) -> tuple[str, str | None]:
    """(content, reasoning) of the deterministic teacher for one prompt."""
    m = re.search(r"The correct answer is: (.+)", prompt)
    if m:  # step 1: pseudo-CoT
        ans = m.group(1).strip()
        return f"Caption: a drawing relevant to the question.\nReasoning: looking closely, the answer is {ans}.", None
    m = re.search(r"the answer is (.+?)\.\n", prompt)
    if "thought about this question" in prompt and m:  # step 2: description
        return (
            f"The picture shows the objects the question asks about. A note in the corner reads: RESULT={m.group(1)}."
        ), None
    m = re.search(r"RESULT=(.+?)\.\n", prompt + "\n")
    if m:  # step 3: the reasoner
        ans = m.group(1)
        seed = hashlib.sha256(prompt.encode()).digest()
        notes = " ".join(WORDS[b % len(WORDS)] for b in seed)  # makes each thinking text distinct
        thinking = (
            f"The question asks about the picture. The description says the note reads {ans}. "
            f"My notes: {notes}. Wait, let me double-check that against the question. "
            f"Yes, so the answer is {ans}."
        )
        return f"The answer is shown above.\n<answer>{ans}</answer>", thinking
    return "I cannot tell.", None


def _fault(state: ServerState, key: str) -> str | None:
    n = state.attempts[key]
    rate = state.fault_rate if n == 1 else state.fault_rate / 2 if n == 2 else 0.0
    h = int(hashlib.sha256(f"{key}:{n}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < rate:
        return state.faults[int(h * 1e6) % len(state.faults)]
    return None


async def _stream(request, state: ServerState, body: dict, content: str, reasoning: str | None, fault, prompt):
    """Server-sent events as vLLM writes them: a role chunk, reasoning then content in small deltas, a final
    chunk with finish_reason, a usage chunk when asked for, then [DONE]. A `drop` fault cuts the stream midway."""
    state.streamed += 1
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    base = {
        "id": f"chatcmpl-{state.served}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }

    async def send(delta: dict, finish=None, **extra) -> None:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    await send({"role": "assistant", "content": ""})
    pieces = [("reasoning_content", reasoning[i : i + 16]) for i in range(0, len(reasoning or ""), 16)]
    pieces += [("content", content[i : i + 16]) for i in range(0, len(content), 16)]
    for n, (key, text) in enumerate(pieces):
        if state.stream_cut and n == len(pieces) // 2 and state.attempts_streamed[prompt] < state.stream_cut:
            state.attempts_streamed[prompt] += 1
            request.transport.close()  # the connection dies mid-answer
            return resp
        await send({key: text})
        await asyncio.sleep(0)
    await send({}, finish="stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(content.split()),
            "total_tokens": len(prompt.split()) + len(content.split()),
        }
        await resp.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def die(state: ServerState) -> None:
    """Die as a crashed server does: refuse new connections, drop every open one (requests in flight too)."""
    state.dead = True
    if state.listener is not None:
        state.listener.close()
    for transport in list(state.transports):
        transport.abort()


def make_app(state: ServerState) -> web.Application:
    sem = asyncio.Semaphore(state.cap) if state.cap else None

    async def completions(request: web.Request) -> web.StreamResponse:
        state.arrived += 1
        if state.die_after is not None and state.arrived > state.die_after:
            die(state)
        if state.dead:
            request.transport.close()
            return web.Response(status=500)
        if state.broken:
            return web.json_response({"error": {"message": "replica unavailable"}}, status=503)
        state.transports.add(request.transport)
        try:
            return await answer(request)
        finally:
            state.transports.discard(request.transport)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"served": state.served, "busy_s": state.busy_s, "max_in_flight": state.max_in_flight, "cap": state.cap}
        )

    async def answer(request: web.Request) -> web.StreamResponse:
        state.auth_headers.add(request.headers.get("Authorization", ""))
        body = await request.json()
        prompt = _text_of(body["messages"])
        key = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        state.attempts[key] += 1
        if state.reject_marker in prompt:
            return web.Response(status=400, text="max_tokens is too large: this model accepts at most 4096 tokens")
        fault = "500" if state.always_fail_marker in prompt else _fault(state, key)
        if sem:
            await sem.acquire()
        counted = fault != "hang"  # a hung request is abandoned by the client at its timeout: not in flight
        state.in_flight += counted
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        t0 = time.perf_counter()
        try:
            if state.latency_s:
                await asyncio.sleep(state.latency_s)
            if state.dead:
                return web.Response(status=500)  # its connection is gone already
            if fault:
                state.fault_log[fault] += 1
            if fault == "429":
                return web.json_response(
                    {"error": {"message": "rate limited"}}, status=429, headers={"Retry-After": "0.05"}
                )
            if fault == "500":
                return web.json_response({"error": {"message": "internal error"}}, status=500)
            if fault == "hang":
                await asyncio.sleep(state.hang_s)
            if fault == "malformed":
                return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
            if fault == "drop":
                request.transport.close()
                return web.Response(status=500)
            content, reasoning = answer_for(prompt)
            if fault == "empty":
                content, reasoning = "", None
            state.served += 1
            if body.get("stream"):
                return await _stream(request, state, body, content, reasoning, fault=fault, prompt=prompt)
            message = {"role": "assistant", "content": content}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            return web.json_response(
                {
                    "id": f"chatcmpl-{state.served}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {
                        "prompt_tokens": len(prompt.split()),
                        "completion_tokens": len(content.split()),
                        "total_tokens": len(prompt.split()) + len(content.split()),
                    },
                }
            )
        finally:
            state.busy_s += time.perf_counter() - t0
            state.in_flight -= counted
            if sem:
                sem.release()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/stats", stats)
    return app


class ChatServer:
    """Runs the app in a thread with its own event loop; `base_url` is http://127.0.0.1:PORT/v1."""

    def __init__(self, state: ServerState | None = None):
        self.state = state or ServerState()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(make_app(self.state), access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner, self.state.listener = runner, site._server
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> ChatServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def kill(self) -> None:
        self._loop.call_soon_threadsafe(die, self.state)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def main() -> None:
    """Serve standalone (benchmarks run it in its own process): prints the port, serves until killed."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--cap", type=int, default=None)
    ap.add_argument("--die-after", type=int, default=None, help="die when this many requests have arrived")
    args = ap.parse_args()
    server = ChatServer(ServerState(latency_s=args.latency, cap=args.cap, die_after=args.die_after))
    server.__enter__()
    print(server.port, flush=True)  # noqa: T201 - the parent reads the port from here
    threading.Event().wait()


if __name__ == "__main__":
    main()
