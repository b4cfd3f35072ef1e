"""Time-bounded math-verify, usable from any thread (verl scores rewards in thread pools).

math-verify bounds its own time with `signal.alarm`, which only works in a main thread, and its TimeoutException
derives from BaseException. So comparisons run in worker processes (whose main thread may use signals), each
answer is checked for blow-up patterns first, and the parent kills a worker that overruns its hard deadline
(big-integer arithmetic in C ignores signals). A killed comparison scores 0 and the worker is replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

DEFAULT_TIMEOUT_S = 2.0
_TOWER = re.compile(
    # a numeric power tower, braced (10^{10^{10}}) or chained (2^3^4); not x^2+y^2 (a power ends at an operator)
    # nor e^{x^2} (a symbolic one is cheap)
    r"\d\s*\^\s*\{[^{}+\-*/=,]*\^"
    r"|\d\s*\^\s*\d+\s*\^"
    r"|\^\s*\{?\s*\d{4,}"  # a huge exponent: 2^{10000}
    r"|\d{3,}\s*!|\([^()]*(?:\^|\d{3,})[^()]*\)\s*!|!\s*!"  # big factorials: 1000!, (10^6)!, n!!
    r"|\\(?:operatorname\{)?[a-z]*fact"
)


def looks_explosive(expr: str) -> bool:
    """Power towers (`10^{10^{10}}`), huge exponents (`2^{10000}`) and big factorials (`(10^6)!`) can take
    minutes or gigabytes in sympy; they are never a gold answer of a math benchmark, so they are refused."""
    return bool(_TOWER.search(expr)) or expr.count("{") > 200 or len(expr) > 1000


WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "math_worker.py")


class _Worker:
    """One `math_worker.py` subprocess; results are read from its stdout with a deadline per item."""

    def __init__(self, timeout_s: float, script: str = WORKER_SCRIPT):
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, script, str(timeout_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._buf = b""
        self.ready = False  # becomes True after its first answer (the first one includes importing sympy)

    def send(self, items: list[tuple[str, str]]) -> None:
        self.proc.stdin.write(json.dumps(items).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, deadline_s: float) -> float | None:
        """The next result, or None when none arrives before the deadline (or the worker died)."""
        line = self.read_line(deadline_s)
        return None if line is None else (1.0 if line.strip() == b"1" else 0.0)

    def read_line(self, deadline_s: float) -> bytes | None:
        end = time.monotonic() + deadline_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


class MathVerifyPool:
    """A few worker processes; `verify(gold, pred)` from any thread; `verify_many` spreads a batch over them."""

    def __init__(
        self,
        n_workers: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cache_size: int = 65536,
        worker_script: str = WORKER_SCRIPT,
    ):
        self.worker_script = worker_script
        self.n_workers = n_workers or max(1, min(4, os.cpu_count() or 1))
        self.timeout_s = timeout_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = cache_size
        self.killed = 0  # workers stopped for overrunning their deadline
        self.replaced = 0  # workers found dead (crashed, OOM-killed) and restarted before use

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._idle.empty() and self._started < self.n_workers:
                self._started += 1
                return _Worker(self.timeout_s, self.worker_script)
        worker = self._idle.get()
        if worker.proc.poll() is not None:
            worker.kill()
            self.replaced += 1
            worker = _Worker(self.timeout_s, self.worker_script)
        return worker

    def _run_on(self, worker: _Worker, items: list[tuple[str, str]]) -> tuple[_Worker, list[float]]:
        """Run items on one worker; an item past its deadline scores 0 and its worker is replaced."""
        results: list[float] = []
        pending = list(items)
        startup_s, item_s = self.timeout_s * 4 + 20.0, self.timeout_s * 2 + 1.0
        while pending:
            sent, pending = pending, []
            with contextlib.suppress(OSError):  # a dead worker shows up as a missing answer below
                worker.send(sent)
            for i in range(len(sent)):
                value = worker.read(item_s if worker.ready else startup_s)
                if value is not None:
                    worker.ready = True
                    results.append(value)
                    continue
                worker.kill()
                self.killed += 1
                worker = _Worker(self.timeout_s, self.worker_script)
                results.append(0.0)
                pending = sent[i + 1 :]
                break
        return worker, results

    def _cached(self, key):
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _remember(self, key, value: float) -> None:
        with self._lock:
            self._cache[key] = value
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def parses(self, expr: str) -> bool:
        """Whether math-verify can read `expr` at all (an expression equal to itself)."""
        return self.verify(expr, expr) == 1.0

    def explain(self, gold: str, pred: str) -> tuple[float, str, str]:
        """(verdict, gold as math-verify read it, prediction as math-verify read it), under the same deadline."""
        if looks_explosive(gold) or looks_explosive(pred):
            return 0.0, gold, pred
        worker = self._acquire()
        try:
            worker.send([(gold, pred, "explain")])
            line = worker.read_line(self.timeout_s * (2 if worker.ready else 4) + (1.0 if worker.ready else 20.0))
        except OSError:
            line = None
        if line is None:
            worker.kill()
            self.killed += 1
            worker = _Worker(self.timeout_s, self.worker_script)
            self._idle.put(worker)
            return 0.0, gold, "(no answer from math-verify in time)"
        worker.ready = True
        self._idle.put(worker)
        value, gold_form, pred_form = json.loads(line)
        return float(value), gold_form, pred_form

    def verify(self, gold: str, pred: str) -> float:
        return self.verify_many([(gold, pred)])[0]

    def verify_many(self, pairs: list[tuple[str, str]]) -> list[float]:
        out: list[float | None] = []
        todo: dict[tuple[str, str], list[int]] = {}
        for i, (g, p) in enumerate(pairs):
            if looks_explosive(g) or looks_explosive(p):
                out.append(0.0)
                continue
            hit = self._cached((g, p))
            out.append(hit)
            if hit is None:
                todo.setdefault((g, p), []).append(i)
        keys = list(todo)
        if keys:
            # contiguous chunks keep a group's pairs (one gold) on one worker, which parses that gold once; several
            # chunks per worker let a worker that drew cheap comparisons take more
            n = min(self.n_workers, max(1, len(keys) // 16))
            size = max(16, -(-len(keys) // (n * 8)))
            chunks = [keys[k : k + size] for k in range(0, len(keys), size)]

            def run(chunk):
                worker = self._acquire()
                worker, res = self._run_on(worker, chunk)
                self._idle.put(worker)
                return chunk, res

            if n == 1:
                done = [run(chunk) for chunk in chunks]
            else:
                with ThreadPoolExecutor(n) as ex:
                    done = list(ex.map(run, chunks))
            for chunk, res in done:
                for key, value in zip(chunk, res, strict=True):
                    self._remember(key, value)
                    for i in todo[key]:
                        out[i] = value
        return [float(v) for v in out]

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().kill()
        self._started = 0


_POOL: MathVerifyPool | None = None
_POOL_PID: int | None = None
_POOL_LOCK = threading.Lock()


def default_pool() -> MathVerifyPool:
    """One pool per process (re-created after a fork: pipes do not survive it)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL, _POOL_PID = MathVerifyPool(), os.getpid()
            atexit.register(_POOL.close)
        return _POOL


def _warm_pairs(i: int) -> list[tuple[str, str]]:
    """One comparison of each kind math-verify reads through its own code path (sympy imports some lazily)."""
    return [
        (f"\\frac{{{i + 1}}}{{{i + 2}}}", f"0.{i + 1}"),
        (f"{i + 2}\\sqrt{{{i + 3}}}", f"\\sqrt{{{i + 7}}}"),
        (f"[{i}, {i + 3})", f"\\left[{i},{i + 3}\\right)"),
        (f"({i}, {i + 1})", f"({i + 1}, {i})"),
        (f"{i}, {i + 5}", f"\\{{{i + 5}, {i}\\}}"),
        (f"y={i + 2}x+1", f"y=1+{i + 2}x"),
        (f"x^2+{i + 1}x", f"x(x+{i + 1})"),
        (f"x\\geq {i}", f"x > {i}"),
    ]


def warm_up(pool: MathVerifyPool | None = None) -> float:
    """Start every worker (spawn + import takes ~1 s each) and take each through the kinds of comparison it will
    see, so the first real batch does not pay sympy's lazy imports; returns the seconds it took."""
    pool = pool or default_pool()
    t0 = time.perf_counter()
    pool.verify_many([pair for i in range(pool.n_workers * 2) for pair in _warm_pairs(i)])
    return time.perf_counter() - t0
