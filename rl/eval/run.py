"""`vr1 eval`: generate on each benchmark with any backend and score by the benchmark's own rule; or score
predictions made elsewhere (`--predictions`); or compare runs (`--compare`).

A run directory `runs/eval/RUN/` holds `predictions/<benchmark>.jsonl` (one line per item and sample: id, variant,
prompt, the whole response, extracted answer, verdict, token counts; appended and fsync'd as responses arrive, so a
killed eval resumes without asking again), `results.json` (per benchmark: accuracy or map, n, breakdowns, length
statistics) and `results.md` (the same as a table).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.config import find_config, load_config, to_dict
from pipeline.errors import Vr1Error
from pipeline.generation import ChatRequest, GenerationError, make_backend
from pipeline.io import atomic_write_text, write_json, write_jsonl
from pipeline.progress import LOG, progress
from pipeline.rundir import create_run_dir
from rl.eval.benchmark import Benchmark, EvalItem
from rl.eval.benchmarks import get_benchmark
from rl.eval.config import BenchmarkSpec, EvalConfig
from rl.eval.lengths import length_stats

HEADLINE = ("accuracy", "map", "worst_case_accuracy")


# ---------------------------------------------------------------- predictions on disk


def read_predictions(path: Path) -> list[dict]:
    """The rows written so far; a line cut by a kill (the last one) is dropped, any other bad line is an error."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):
                LOG.warning("%s: the last line was cut off (a killed run); it will be asked again", path)
                continue
            raise Vr1Error(f"{path}, line {i}: not JSON ({e.msg})") from None
    return rows


class Appender:
    """Append one JSON line at a time and fsync it: what is on disk survives a kill."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, row: dict) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


# ---------------------------------------------------------------- scoring


def token_counter(name: str | None) -> Callable[[str], int] | None:
    if not name:
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name)
    except Exception as e:  # noqa: BLE001 - lengths fall back to characters, and say so
        LOG.warning("no tokenizer at %s (%s): lengths are counted in characters", name, type(e).__name__)
        return None
    return lambda text: len(tok.encode(text, add_special_tokens=False)) if text else 0


def score_rows(bench: Benchmark, items: dict[str, EvalItem], rows: list[dict], options: dict) -> list[dict]:
    scored = []
    for row in rows:
        item = items[row["key"]]
        scored.append({**row, **bench.score(item, row["response"], **options)})
    return scored


def benchmark_results(bench: Benchmark, items: dict[str, EvalItem], scored: list[dict], counter) -> dict:
    figures = bench.aggregate([items[r["key"]] for r in scored], scored)
    figures["lengths"] = length_stats(scored, counter)
    return figures


# ---------------------------------------------------------------- generation


def full_response(completion) -> str:
    """The model's whole output: servers and the local backend hand an inline `<think>` back separately."""
    if completion.reasoning:
        return f"<think>\n{completion.reasoning}\n</think>\n{completion.text}"
    return completion.text


def model_fingerprint(cfg) -> str:
    """What answers depend on: the backend, the model and every request setting, and for a local checkpoint its
    weight files (size, time): a rerun under the same --name reuses an answer only when this is unchanged."""
    parts = [cfg.backend, cfg.model, cfg.base_url, json.dumps(cfg.request_settings(), sort_keys=True)]
    folder = Path(cfg.model)
    if folder.is_dir():
        parts += [f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in sorted(folder.glob("*.safetensors"))]
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


def prediction_row(item: EvalItem, k: int, prompt: str, completion, fingerprint: str = "") -> dict:
    return {
        "key": item.key,
        "id": item.id,
        "variant": item.variant,
        "sample": k,
        "prompt": prompt,
        "response": full_response(completion),
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "model": completion.model,
        "fingerprint": fingerprint,
    }


async def generate(
    backend, bench: Benchmark, todo: list[tuple[EvalItem, int]], out: Appender, batch_size: int = 1, fingerprint=""
) -> list[str]:
    """Ask for every (item, sample) in `todo`, appending each answer as it arrives; returns the failures. A backend
    that batches (transformers in-process) gets `batch_size` requests per call; a server gets them concurrently."""
    failures: list[str] = []
    bar = progress(total=len(todo), desc=f"eval {bench.name}")

    def request(item: EvalItem, k: int) -> ChatRequest:
        images = [Path(p) for p in item.images]
        return ChatRequest(bench.prompt(item), images, key=f"{bench.name}/{item.key}/{k}")

    if batch_size > 1 and hasattr(backend, "complete_batch"):
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            requests = [request(item, k) for item, k in chunk]
            try:
                completions = await backend.complete_batch(requests)
            except GenerationError as e:
                failures += [f"{item.key}: {e.reason}" for item, _ in chunk]
            else:
                for (item, k), r, c in zip(chunk, requests, completions, strict=True):
                    out.write(prediction_row(item, k, r.text, c, fingerprint))
            bar.update(len(chunk))
    else:
        gate = asyncio.Semaphore(backend.max_concurrency)

        async def one(item: EvalItem, k: int) -> None:
            r = request(item, k)
            async with gate:
                try:
                    c = await backend.complete(r)
                except GenerationError as e:
                    failures.append(f"{item.key}: {e.reason}")
                else:
                    out.write(prediction_row(item, k, r.text, c, fingerprint))
            bar.update(1)

        await asyncio.gather(*(one(item, k) for item, k in todo))
    bar.close()
    return failures


def load_items(spec: BenchmarkSpec) -> tuple[Benchmark, dict[str, EvalItem]]:
    bench = get_benchmark(spec.name)
    if "prompt_template" in spec.options:  # ask as training asked (pipeline/data/prompts.py)
        from pipeline.data.prompts import check_template

        if (why := check_template(spec.options["prompt_template"])) is not None:
            raise Vr1Error(f"benchmark {spec.name}: {why}")
        bench.prompt_template = spec.options["prompt_template"]
    path = Path(spec.path)
    if not path.exists():
        raise Vr1Error(f"benchmark {spec.name}: {path} not found (benchmarks.path)")
    items = bench.load(path, Path(spec.image_root) if spec.image_root else None, spec.limit)
    if not items:
        raise Vr1Error(f"benchmark {spec.name}: no items read from {path}")
    return bench, {item.key: item for item in items}


def run_generate(args) -> int:
    cfg = load_config(EvalConfig, args.config, args.overrides)
    benches = {spec.name: load_items(spec) for spec in cfg.benchmarks}  # every reader checked before any model loads
    name = args.name or time.strftime("%Y%m%d-%H%M%S")
    run = create_run_dir("eval", to_dict(cfg), name=name, root=args.runs_root)
    local = Path(cfg.model.model)
    counter = token_counter(cfg.tokenizer or (str(local) if (local / "tokenizer_config.json").is_file() else None))
    results, failed = asyncio.run(evaluate_all(cfg, benches, run.path, counter))
    return finish(run, results, cfg.model.model, failed)


async def evaluate_all(cfg: EvalConfig, benches: dict, run_path: Path, counter) -> tuple[dict, dict]:
    """Every benchmark in one event loop (a server client lives in one), the backend closed at the end."""
    backend = make_backend(cfg.model)
    fingerprint = model_fingerprint(cfg.model)
    results, failed = {}, {}
    try:
        for spec in cfg.benchmarks:
            bench, items = benches[spec.name]
            path = run_path / "predictions" / f"{spec.name}.jsonl"
            on_disk = read_predictions(path)
            kept = [r for r in on_disk if r.get("fingerprint") == fingerprint]
            if len(kept) < len(on_disk):
                LOG.warning(
                    "%s: %d answer(s) on disk came from another model or settings; asking again",
                    spec.name,
                    len(on_disk) - len(kept),
                )
            if path.is_file() and (len(kept) < len(on_disk) or not path.read_bytes().endswith(b"\n")):
                write_jsonl(path, kept)  # a kill cut the last line, or the answers are stale: keep the valid ones
            done = {(r["key"], r["sample"]) for r in kept}
            todo = [(it, k) for it in items.values() for k in range(cfg.n_samples) if (it.key, k) not in done]
            if done:
                LOG.info("%s: %d answer(s) on disk reused, %d to ask", spec.name, len(done), len(todo))
            if todo:
                out = Appender(path)
                try:
                    failures = await generate(backend, bench, todo, out, cfg.model.batch_size, fingerprint)
                finally:
                    out.close()
                if failures:
                    failed[spec.name] = failures
            rows = [r for r in read_predictions(path) if r["key"] in items]
            options = {"max_pixels": cfg.model.max_pixels, **spec.options}  # boxes in the frame the model saw
            scored = score_rows(bench, items, rows, options)
            write_jsonl(path, scored)  # the same rows, with their verdicts
            results[spec.name] = {**benchmark_results(bench, items, scored, counter), "model": cfg.model.model}
    finally:
        await backend.aclose()
    return results, failed


def finish(run, results: dict, model: str, failed: dict | None = None) -> int:
    write_json(run.path / "results.json", results)
    atomic_write_text(run.path / "results.md", results_table({run.name: results}))
    print(results_table({run.name: results}))  # noqa: T201 - the table is the answer
    if failed:
        n = sum(len(v) for v in failed.values())
        first = next(iter(failed.values()))[0]
        raise Vr1Error(
            f"{n} request(s) failed (e.g. {first}); their items are not scored. Rerun the same command with "
            f"--name {run.name} to ask only those again; results.json holds the rest"
        )
    print(f"  wrote {run.path}/: predictions/<benchmark>.jsonl, results.json, results.md")  # noqa: T201
    run.mark_latest()
    return 0


# ---------------------------------------------------------------- score-only


def scorer_options(pairs: list[str]) -> dict:
    """`key=value` words as scorer options, values read as YAML (numbers, lists) the way config overrides are."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise Vr1Error(f"'{pair}': scorer options are key=value (e.g. pred_frame=abs_original)")
        out[key] = yaml.safe_load(value)
    return out


def run_score_only(args) -> int:
    """Score predictions made elsewhere: one line per item, {"id", "response"[, "variant"][, "sample"]}."""
    if not args.benchmark or not args.data:
        raise Vr1Error("score-only mode needs --benchmark NAME --data PATH --predictions FILE.jsonl")
    spec = BenchmarkSpec(args.benchmark, args.data, args.image_root, options=scorer_options(args.overrides))
    bench, items = load_items(spec)
    pred_path = Path(args.predictions)
    rows = []
    for i, row in enumerate(read_predictions(pred_path), 1):
        if not isinstance(row.get("response"), str) or "id" not in row:
            raise Vr1Error(f'{pred_path}, line {i}: each line needs "id" and "response" (a string)')
        key = str(row["id"]) if row.get("variant") is None else f"{row['id']}#{row['variant']}"
        if key not in items:
            raise Vr1Error(f"{pred_path}, line {i}: id {key!r} is not an item of {spec.name} in {spec.path}")
        rows.append({**row, "key": key, "id": str(row["id"]), "sample": row.get("sample", 0)})
    answered = {r["key"] for r in rows}
    missing = [k for k in items if k not in answered]
    rows += [{"key": k, "id": items[k].id, "variant": items[k].variant, "sample": 0, "response": ""} for k in missing]
    name = args.name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = create_run_dir(
        "eval", {"score_only": vars(spec), "predictions": str(pred_path)}, name=name, root=args.runs_root
    )
    scored = score_rows(bench, items, rows, spec.options)
    write_jsonl(run.path / "predictions" / f"{spec.name}.jsonl", scored)
    figures = benchmark_results(bench, items, scored, token_counter(args.tokenizer))
    figures["missing"] = len(missing)
    if missing:
        LOG.warning("%d item(s) have no prediction and count as wrong (e.g. %s)", len(missing), missing[0])
    return finish(run, {spec.name: figures}, str(pred_path))


# ---------------------------------------------------------------- tables


def headline(figures: dict) -> tuple[str, float] | None:
    for key in HEADLINE:
        if isinstance(figures.get(key), (int, float)):
            return key, float(figures[key])
    return None


def results_table(runs: dict[str, dict]) -> str:
    """Markdown: one row per run, one column per benchmark (its headline figure, in percent), deltas against the
    first run when there are several."""
    benches = sorted({b for results in runs.values() for b in results})
    lines = ["| run | " + " | ".join(benches) + " |", "|---|" + "---|" * len(benches)]
    base = next(iter(runs.values()))
    for run_name, results in runs.items():
        cells = []
        for b in benches:
            h = headline(results.get(b, {}))
            if h is None:
                cells.append("–")
                continue
            cell = f"{100 * h[1]:.1f}"
            ref = headline(base.get(b, {}))
            if results is not base and ref is not None:
                cell += f" ({100 * (h[1] - ref[1]):+.1f})"
            cells.append(cell)
        lines.append(f"| {run_name} | " + " | ".join(cells) + " |")
    lengths = [
        length_line(run_name, b, f)
        for run_name, results in runs.items()
        for b, f in sorted(results.items())
        if isinstance(f, dict) and "lengths" in f
    ]
    return "\n".join(lines + ([""] + lengths if lengths else [])) + "\n"


def length_line(run_name: str, bench: str, figures: dict) -> str:
    lengths = figures["lengths"]
    thinking = lengths.get("thinking_tokens") or lengths.get("thinking_chars")
    unit = "tokens" if "thinking_tokens" in lengths else "chars"
    return (
        f"- {run_name} / {bench}: n={figures.get('n')}, thinking {unit} mean {thinking['mean']} (p95 {thinking['p95']})"
        f", truncated {lengths['truncation_rate']:.1%}, format failures {lengths['format_failure_rate']:.1%}"
    )


def run_compare(args) -> int:
    runs = {}
    for ref in args.compare:
        path = Path(ref) if Path(ref).is_dir() else Path(args.runs_root) / "eval" / ref
        if not (path / "results.json").is_file():
            raise Vr1Error(f"--compare {ref}: no results.json in {path}")
        runs[path.name if path.name != "latest" else path.resolve().name] = json.loads(
            (path / "results.json").read_text()
        )
    print(results_table(runs))  # noqa: T201
    return 0


def run(args) -> int:
    if getattr(args, "compare", None):
        return run_compare(args)
    if getattr(args, "predictions", None):
        return run_score_only(args)
    if args.config is None or (not str(args.config).endswith((".yaml", ".yml")) and not find_config(args.config)):
        raise Vr1Error("give --config eval/NAME (or a YAML path)")
    return run_generate(args)
