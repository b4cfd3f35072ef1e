"""`vr1 inspect`: a static HTML report of a cold-start run, and terminal views of single samples.

The report is a folder that opens from disk (no server, no network): index.html, app.js, style.css,
overview.js, the sample index in chunks (filtering and search), sample details in chunks (loaded when a
sample is opened), and thumbnails. Data files are JavaScript calls carrying JSON in which every `<` is escaped,
and the page inserts all model text as text, never as HTML.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import textwrap
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image

from coldstart.counts import VERDICTS, VerdictCounts
from pipeline.errors import Vr1Error
from pipeline.io import atomic_path
from pipeline.progress import progress

ASSETS = Path(__file__).parent / "inspect_assets"
INDEX_CHUNK = 5000  # rows per index file (~0.5-1 MB)
DETAIL_CHUNK = 500  # samples per detail file
THUMB_PX = 192
SNIPPET = 240


def iter_records(run_dir: Path) -> Iterator[dict]:
    path = run_dir / "coldstart.jsonl"
    if not path.is_file():
        raise Vr1Error(f"{run_dir} has no coldstart.jsonl (is it a finished `vr1 coldstart` run?)")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _js(callback: str, payload) -> str:
    body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    return f"{callback}({body});\n"


def thinking_of(rec: dict) -> str:
    reasoning = rec.get("reasoning") or {}
    return reasoning.get("thinking") or ""


class ThumbMaker:
    """JPEG thumbnails named by the source path's hash: one per distinct image, reused across rebuilds."""

    def __init__(self, out: Path, image_roots: dict[str, Path]):
        self.out = out
        self.roots = image_roots
        self.made: dict[str, str | None] = {}
        out.mkdir(parents=True, exist_ok=True)

    def source_path(self, rec: dict, rel: str) -> Path | None:
        root = self.roots.get(rec.get("source"))
        return (root / rel) if root else None

    def __call__(self, rec: dict, rel: str) -> str | None:
        src = self.source_path(rec, rel)
        if src is None:
            return None
        key = str(src)
        if key not in self.made:
            name = hashlib.sha1(key.encode()).hexdigest()[:20] + ".jpg"
            target = self.out / name
            if not target.exists():
                try:
                    with Image.open(src) as im:
                        im = im.convert("RGB")
                        im.thumbnail((THUMB_PX, THUMB_PX))
                        im.save(target, "JPEG", quality=80)
                except (OSError, ValueError):
                    self.made[key] = None
                    return None
            self.made[key] = f"thumbs/{name}"
        return self.made[key]


def image_roots(run_dir: Path) -> dict[str, Path]:
    """Where each source's images live (recorded by `vr1 coldstart`); the report links the originals."""
    path = run_dir / "image_roots.json"
    return {k: Path(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def _bins(values: list[int], n: int = 24) -> dict:
    if not values:
        return {"edges": [], "counts": []}
    hi = max(values)
    width = max(1, math.ceil((hi + 1) / n))
    counts = Counter(min(v // width, n - 1) for v in values)
    return {"edges": [i * width for i in range(n + 1)], "counts": [counts.get(i, 0) for i in range(n)]}


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    records: Iterable[dict] | None = None,
    roots: dict[str, Path] | None = None,
) -> Path:
    """Write the report folder (atomically) and return the path of its index.html."""
    run_dir = Path(run_dir).resolve()
    out = Path(out) if out else run_dir / "inspect"
    roots = roots if roots is not None else image_roots(run_dir)
    records = records if records is not None else iter_records(run_dir)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "data").mkdir()
        thumbs = ThumbMaker(tmp / "thumbs", roots)
        if (out / "thumbs").is_dir():  # reuse thumbnails from the previous build
            shutil.copytree(out / "thumbs", tmp / "thumbs", dirs_exist_ok=True)
        rules: list[str] = []
        sources: list[str] = []
        counts = VerdictCounts()
        reason_examples: dict[tuple[str, str], list] = {}
        think_len, desc_len = [], []
        index, details = [], []
        n = 0

        def flush_index(final=False):
            while len(index) >= INDEX_CHUNK or (final and index):
                part, index[:] = index[:INDEX_CHUNK], index[INDEX_CHUNK:]
                k = len(list((tmp / "data").glob("index-*.js")))
                (tmp / "data" / f"index-{k:04d}.js").write_text(_js("VR1.index", {"chunk": k, "rows": part}))

        def flush_details(final=False):
            while len(details) >= DETAIL_CHUNK or (final and details):
                part, details[:] = details[:DETAIL_CHUNK], details[DETAIL_CHUNK:]
                k = len(list((tmp / "data").glob("detail-*.js")))
                (tmp / "data" / f"detail-{k:04d}.js").write_text(_js("VR1.detail", {"chunk": k, "samples": part}))

        for rec in progress(records, desc="inspect", unit="sample"):
            src = rec.get("source", "?")
            if src not in sources:
                sources.append(src)
            counts.add(rec)
            rule_ids = []
            for r in rec.get("reasons") or []:
                if r["rule"] not in rules:
                    rules.append(r["rule"])
                rule_ids.append(rules.index(r["rule"]))
                key = (r["rule"], r["reason"][:60])
                ex = reason_examples.setdefault(key, [0, rec.get("uid") or rec["id"], r["reason"]])
                ex[0] += 1
            thinking = thinking_of(rec)
            think_len.append(len(thinking))
            desc_len.append(len(rec.get("description") or ""))
            thumbs_of = [thumbs(rec, rel) for rel in rec.get("images") or []]
            originals = []
            for rel in rec.get("images") or []:
                p = thumbs.source_path(rec, rel)
                originals.append(os.path.relpath(p, out) if p else None)
            uid = rec.get("uid") or f"{src}/{rec['id']}"
            index.append(
                [
                    uid,
                    sources.index(src),
                    rec["verdict"][0],
                    rule_ids,
                    (rec.get("question") or "")[:SNIPPET],
                    str(rec.get("answer", ""))[:40],
                    str(rec.get("final_answer") or "")[:40],
                    len(thinking),
                    thumbs_of[:1],
                ]
            )
            details.append(
                {
                    "uid": uid,
                    "id": rec["id"],
                    "source": src,
                    "question": rec.get("question"),
                    "answer": rec.get("answer"),
                    "answer_type": rec.get("answer_type"),
                    "choices": rec.get("choices"),
                    "images": originals,
                    "thumbs": thumbs_of,
                    "pseudo_cot": rec.get("pseudo_cot"),
                    "description": rec.get("description"),
                    "thinking": thinking,
                    "reasoner_text": (rec.get("reasoning") or {}).get("text"),
                    "final_answer": rec.get("final_answer"),
                    "response": rec.get("response"),
                    "verdict": rec["verdict"],
                    "reasons": rec.get("reasons") or [],
                    "edits": rec.get("edits") or [],
                    "provenance": rec.get("provenance") or {},
                }
            )
            n += 1
            flush_index()
            flush_details()
        flush_index(final=True)
        flush_details(final=True)
        top = sorted(reason_examples.items(), key=lambda kv: -kv[1][0])[:20]
        tally = counts.as_dict()
        overview = {
            "run": str(run_dir),
            "total": n,
            "rules": rules,
            "sources": sources,
            "verdicts": {v: tally[v] for v in VERDICTS},
            "by_rule": tally["by_rule"],
            "by_source": {
                s: {k: c[k] for k in ("total", *VERDICTS, "keep_rate", "by_rule")}
                for s, c in tally["by_source"].items()
            },
            "thinking_hist": _bins(think_len),
            "description_hist": _bins(desc_len),
            "top_reasons": [{"rule": k[0], "reason": ex[2], "count": ex[0], "example": ex[1]} for k, ex in top],
            "index_chunks": len(list((tmp / "data").glob("index-*.js"))),
            "index_chunk": INDEX_CHUNK,
            "detail_chunk": DETAIL_CHUNK,
        }
        (tmp / "data" / "overview.js").write_text(_js("VR1.overview", overview))
        for asset in ("index.html", "app.js", "style.css"):
            shutil.copy(ASSETS / asset, tmp / asset)
    return out / "index.html"


# ---------------------------------------------------------------- terminal views


def _block(title: str, text: str | None, width: int = 100) -> str:
    body = "\n".join(textwrap.fill(p, width, replace_whitespace=False) if p else "" for p in (text or "—").split("\n"))
    return f"\033[1m{title}\033[0m\n{textwrap.indent(body, '  ')}"


def format_sample(rec: dict) -> str:
    verdict = rec["verdict"].upper()
    color = {"KEPT": "32", "DROPPED": "31", "FAILED": "33"}[verdict]
    lines = [
        f"\033[1;{color}m{verdict}\033[0m  {rec.get('uid') or rec['id']}  ({rec.get('answer_type')}, "
        f"{len(rec.get('images') or [])} image(s): {', '.join(rec.get('images') or [])})"
    ]
    for r in rec.get("reasons") or []:
        lines.append(f"  \033[31m✗ {r['rule']}\033[0m: {r['reason']}")
    for e in rec.get("edits") or []:
        lines.append(f"  \033[36m✎ {e['rule']}\033[0m: {e['count']} × /{e['pattern']}/")
    lines += [
        _block("question", rec.get("question")),
        _block("ground truth", str(rec.get("answer"))),
        _block("pseudo-CoT", rec.get("pseudo_cot")),
        _block("description", rec.get("description")),
        _block("thinking", thinking_of(rec)),
        _block("final answer", rec.get("final_answer")),
    ]
    prov = rec.get("provenance") or {}
    for step, p in prov.items():
        tokens = f"{p.get('prompt_tokens')}→{p.get('completion_tokens')} tokens"
        lines.append(
            f"  \033[2m{step}: {p.get('model')} prompt {p.get('prompt_hash')} {tokens} "
            f"{p.get('latency_s', 0):.2f}s\033[0m"
        )
    return "\n".join(lines)


def find_samples(run_dir: Path, sample: str | None = None, dropped_by: str | None = None, limit: int = 5) -> list[dict]:
    found = []
    for rec in iter_records(run_dir):
        if sample is not None and sample not in (rec["id"], rec.get("uid")):
            continue
        if dropped_by is not None and dropped_by not in {r["rule"] for r in rec.get("reasons") or []}:
            continue
        found.append(rec)
        if len(found) >= limit:
            break
    return found


def run(args) -> int:
    from pipeline.rundir import latest_run

    run_dir = Path(args.run_dir) if args.run_dir else latest_run("coldstart", args.runs_root)
    if args.sample or args.dropped_by:
        recs = find_samples(run_dir, args.sample, args.dropped_by, args.limit)
        if not recs:
            what = f"sample {args.sample}" if args.sample else f"samples dropped by {args.dropped_by}"
            raise Vr1Error(f"no {what} in {run_dir}")
        print("\n\n".join(format_sample(r) for r in recs))  # noqa: T201
        return 0
    path = build_report(run_dir)
    size = max((p.stat().st_size for p in path.parent.rglob("*") if p.is_file()), default=0)
    print(f"inspect: wrote {path} (largest file {size / 1e6:.2f} MB); open it in a browser")  # noqa: T201
    return 0
