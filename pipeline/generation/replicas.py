"""Several servers behind one role (the vLLM replicas of a 72B VLM): which one takes the next request, and what
happens to one that keeps failing.

Dispatch: a request takes a slot on the live replica with the fewest requests outstanding relative to its own cap
(ties: fewest outstanding, then config order). When every slot is taken it queues, later pipeline steps first and
then first come, first served, and a freed slot is handed straight to the head of the queue: the waiter does not
have to wake up and race newcomers for it, so a server never idles between one answer and the next request.

Health: every retryable failure counts against the replica that gave it, any answer resets the count; while the
count is not zero the replica takes no new request (unless it is the only one) until one it holds is answered. After
`fail_limit` failures in a row the replica is rested for `rest_s` (doubling, up to 16x, each time it fails again
right after a rest); when the rest ends it takes a single request (a probe) and gets its whole cap back once that is
answered. The last replica still taking requests is never rested: with all of them failing, requests back off and
give up as they would against one server. A request that failed on a replica goes to another one when any is live,
so the requests a dead replica had in flight are asked again elsewhere; the backend decides about waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from urllib.parse import urlsplit

from pipeline.progress import LOG

OK, FAILED, NEUTRAL = "ok", "failed", "neutral"  # what an attempt says about the replica's health


def safe_url(url: str) -> str:
    """The URL without any user:password part, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class Replica:
    __slots__ = ("url", "cap", "index", "in_flight", "fails", "rests", "resting_until", "probe", "answered", "failed")

    def __init__(self, url: str, cap: int, index: int):
        self.url, self.cap, self.index = url, cap, index
        self.in_flight = self.fails = self.rests = self.answered = self.failed = 0
        self.resting_until = 0.0
        self.probe = False  # back from a rest, not yet answered since: one request at a time

    def stats(self) -> dict:
        return {"url": safe_url(self.url), "cap": self.cap, "answered": self.answered, "failed": self.failed}


class ReplicaPool:
    def __init__(self, replicas: list[tuple[str, int]], fail_limit: int = 3, rest_s: float = 30.0):
        self.replicas = [Replica(url, cap, i) for i, (url, cap) in enumerate(replicas)]
        self.fail_limit, self.rest_s = fail_limit, rest_s
        self._queues: dict[int, deque] = {}  # priority -> waiters (future, avoid)

    @property
    def capacity(self) -> int:
        return sum(r.cap for r in self.replicas)

    def _live(self, r: Replica, now: float) -> bool:
        return r.resting_until <= now

    def others_live(self, r: Replica) -> bool:
        now = time.monotonic()
        return any(o is not r and self._live(o, now) for o in self.replicas)

    def _pick(self, avoid: Replica | None) -> Replica | None:
        now = time.monotonic()
        live = [r for r in self.replicas if self._live(r, now)]
        best, best_key = None, None
        for r in live:
            # a replica whose last attempt failed takes no new request until one it holds is answered (unless it is
            # the only one live): when it has died, the requests it held are all it costs
            limit = 1 if r.probe or (r.fails and len(live) > 1) else r.cap
            if r.in_flight >= limit:
                continue
            if r is avoid and len(live) > 1:  # the one it just failed on, only when there is nowhere else
                continue
            key = (r.in_flight / r.cap, r.in_flight, r.index)
            if best_key is None or key < best_key:
                best, best_key = r, key
        return best

    async def acquire(self, avoid: Replica | None = None, priority: int = 0) -> Replica:
        """A slot on a replica (not `avoid` while another is live); wait in the queue when none is free."""
        fut = asyncio.get_running_loop().create_future()
        self._queues.setdefault(priority, deque()).append((fut, avoid))
        self._dispatch()  # a free slot is taken at once (awaiting a finished future does not yield)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot at the moment it was cancelled: give it back
                self.release(fut.result(), NEUTRAL)
            raise

    def release(self, r: Replica, outcome: str) -> None:
        """Give the slot back, saying what the attempt showed about the replica."""
        r.in_flight -= 1
        if outcome == OK:
            r.answered += 1
            r.fails = r.rests = 0
            r.probe = False
        elif outcome == FAILED:
            r.failed += 1
            r.fails += 1
            if r.resting_until > time.monotonic():
                pass  # an attempt sent before the rest began: the rest already answers for it
            elif (r.probe or r.fails >= self.fail_limit) and self.others_live(r):
                self._rest(r)
            else:
                r.probe = False  # the last live replica keeps its whole cap: requests back off instead
        self._dispatch()

    def _rest(self, r: Replica) -> None:
        r.rests += 1
        rest = min(self.rest_s * 2 ** (r.rests - 1), 16 * self.rest_s)
        r.resting_until = time.monotonic() + rest
        r.probe = True
        LOG.warning(
            "replica %s failed %d times in a row; resting it %.0fs, then one probe request",
            safe_url(r.url),
            r.fails,
            rest,
        )
        asyncio.get_running_loop().call_later(rest, self._dispatch)

    def _dispatch(self) -> None:
        """Hand free slots to waiters: higher priority first, then in arrival order."""
        for priority in sorted(self._queues, reverse=True):
            queue = self._queues[priority]
            skipped = deque()
            while queue:
                fut, avoid = queue.popleft()
                if fut.done():  # cancelled while waiting
                    continue
                r = self._pick(avoid)
                if r is None:
                    skipped.append((fut, avoid))
                    if self._pick(None) is None:  # no free slot anywhere: nobody else can be served either
                        skipped.extend(queue)
                        self._queues[priority] = skipped
                        return
                    continue
                r.in_flight += 1
                fut.set_result(r)
            skipped.extend(queue)
            self._queues[priority] = skipped

    def stats(self) -> list[dict]:
        return [r.stats() for r in self.replicas]
