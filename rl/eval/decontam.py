"""Decontamination: which training items are near-duplicates of benchmark items, and a training set without them.

A training item and an eval item overlap when

* an image of one is a perceptual near-duplicate of an image of the other: the 64-bit pHash (ImageHash's `phash`)
  of the two files differ in at most `image_distance` bits (any image pair of the two items counts), or
* their questions are near-duplicates: `rapidfuzz.fuzz.ratio` of the normalised texts (NFKC, lower case, `<image>`
  placeholders and punctuation dropped, whitespace collapsed) is at least `text_score`.

Defaults and why (measured with ImageHash 4.3.2 on drawn images: 120 `vr1 demo-data` PNGs and 60 distinct PNG/JPEG
files found on the build machine -- icons, diagrams, photos):

* `image_distance=6`: a JPEG re-encode (quality 95..30), a WebP re-encode, a resize (x0.25..x2, also non-uniform)
  or a half-size JPEG moved the hash by at most 6 bits (99th percentile 2, mean < 0.7); two different images were
  at least 8 bits apart on the drawings (0.1th percentile 14) and at least 10 on the files (the two pairs at 0 and
  6 there are the same icon/logo stored twice). Not covered: crops (a 3% crop moves the hash 5..12 bits), flips,
  rotations; and two renderings of one template that differ only in small labels (the demo set's triangles with
  other angle numbers) hash alike -- pHash sees the figure, not the digits, so such pairs are reported as "image".
* `text_score=90` on `fuzz.ratio`: a lightly reworded question ("What is the length of AC?" -> "Find the length
  of AC.", "AB is the diameter ... and point C is on the circle" -> "... and C is a point on the circle") scores
  91..94; different questions of one family ("How many red cubes ..." / "How many blue spheres ...", CLEVR-style
  "Subtract all ...") score about 82. `token_set_ratio` is not used: it scores 100 whenever one question's words are
  a subset of the other's ("Find x." inside "Find x. Round to the nearest tenth.").
* Text evidence is only used for specific questions: the normalised text has at least `min_text_chars` (40)
  characters, and it is not a template -- it does not occur (normalised, exactly) in `template_count` (3) or more
  items of its own side. "Find x.", "What is the value of x?", MathVerse's vision-only boilerplate or the demo set's
  fixed wording say nothing about which problem it is; such items are still compared by image.

Indexing, so that 100K x 100K is not 10^10 comparisons:

* Images: multi-index hashing. Each 64-bit hash is cut into 4 chunks of 16 bits and the eval hashes are sorted per
  chunk. If two hashes differ in at most d bits, one of the 4 chunks differs in at most floor(d/4) bits
  (pigeonhole), so probing each train chunk with every 16-bit mask of popcount <= floor(d/4) (17 probes per chunk
  for d = 4..7) finds every pair within d: recall is exact, not probabilistic. Candidates are then checked on the
  full 64 bits. All of it is numpy (searchsorted), in blocks.
* Texts: ratio = 2*LCS/(la+lb) and LCS <= min(la, lb), so a score >= tau is only possible between lengths
  la*tau/(2-tau) and la*(2-tau)/tau (0.82x..1.22x at 90). Both sides are sorted by length and each block of 256
  training texts is scored by rapidfuzz's `process.cdist` (C++, all cores, score_cutoff) against the eval texts in
  its length band only: exact (every pair that can reach the score is scored), no Python loop over pairs, memory
  bounded by the block. This is still quadratic within a band (~0.4 us per pair of 160-character texts per core);
  a q-gram prefix filter with an exact bound was tried and dropped: at a 90 score it must probe about 2/3 of a
  text's q-grams and let ~70% of the eval set through as candidates. Text evidence is also limited to specific
  questions (above), which leaves out the short and boilerplate ones.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.schema import IMAGE_PLACEHOLDER, Sample
from pipeline.errors import Vr1Error
from pipeline.progress import LOG, progress

IMAGE_DISTANCE = 6
TEXT_SCORE = 90.0
MIN_TEXT_CHARS = 40
TEMPLATE_COUNT = 3
MAX_IMAGE_DISTANCE = 16  # a quarter of the bits: beyond it pHash no longer means "the same picture" (random: ~32)
_CHUNKS = 4  # 16-bit chunks of the 64-bit pHash


@dataclass
class EvalRecord:
    """One item to compare: its id, question and absolute image paths, and the benchmark (or manifest) it is from."""

    id: str
    question: str
    images: list[str]
    benchmark: str
    source: str | None = None  # a training Sample's `source` (ids are unique within a manifest, not across)
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------- building records


def records_from_samples(samples: Iterable[Sample], image_root: str | Path, benchmark: str) -> list[EvalRecord]:
    root = Path(image_root)
    return [
        EvalRecord(s.id, s.question, [str((root / rel).resolve()) for rel in s.images], benchmark, s.source)
        for s in samples
    ]


def records_from_manifest(manifest: Manifest | str | Path, strict: bool = False) -> list[EvalRecord]:
    """The items of a vr1 manifest (any layout `pipeline.data.formats` reads), named by the manifest's name."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
    result = read_manifest(m, strict=strict)
    if result.rejects:
        LOG.warning("%s: %d record(s) rejected and not compared: %s", m.name, len(result.rejects), result.rejects[0])
    return records_from_samples(result.samples, m.image_root, m.name)


def records_from_eval_items(items: Iterable[Any], benchmark: str) -> list[EvalRecord]:
    """Records from `rl.eval.benchmark.EvalItem`s (id, question, absolute images); variants keep their own key."""
    return [EvalRecord(getattr(it, "key", it.id), it.question, [str(p) for p in it.images], benchmark) for it in items]


def _train_record(item: Any, index: int) -> EvalRecord:
    """A training item: a (Sample, image_root) pair as `rl/ptst` loads it, an EvalRecord, or any object with
    `question`, absolute `images` and a `uid` or `id` (the SFT examples)."""
    if isinstance(item, EvalRecord):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Sample):
        return records_from_samples([item[0]], item[1], "train")[0]
    ident = getattr(item, "uid", None) or getattr(item, "id", None)
    if ident is None or not hasattr(item, "question") or not hasattr(item, "images"):
        raise Vr1Error(f"training item {index}: expected (Sample, image_root) or an object with id, question, images")
    return EvalRecord(str(ident), item.question, [str(p) for p in item.images], "train")


# ---------------------------------------------------------------- image hashes


def image_phash(path: str | Path) -> int:
    """The 64-bit pHash of an image file as an int. Orientation (EXIF) is applied and transparency is laid on white,
    so a re-encode that bakes either in hashes the same; JPEGs are decoded at a reduced scale (`draft`), which
    moves the hash by no more than a re-encode does."""
    import imagehash
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (128, 128))
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        return int(str(imagehash.phash(im.convert("RGB"))), 16)


def _safe_phash(path: str) -> int | None:
    try:
        return image_phash(path)
    except Exception as e:  # one unreadable file is reported, it does not stop 100K others
        LOG.warning("decontam: cannot hash %s: %s", path, e)
        return None


def hash_images(paths: Sequence[str], workers: int | None = None, desc: str = "phash") -> dict[str, int | None]:
    """pHash of each distinct path (None where the file does not decode), with a progress bar. Threads, not
    processes: this also runs inside `vr1 sft`/`vr1 ptst`, where forking a process that holds CUDA is unsafe."""
    unique = list(dict.fromkeys(paths))
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    out: dict[str, int | None] = {}
    bar = progress(total=len(unique), desc=desc, unit="image")
    if workers > 1 and len(unique) >= 64:
        with ThreadPoolExecutor(workers) as pool:
            for p, h in zip(unique, pool.map(_safe_phash, unique, chunksize=32), strict=True):
                out[p] = h
                bar.update()
    else:
        for p in unique:
            out[p] = _safe_phash(p)
            bar.update()
    bar.close()
    return out


def _popcount(x):
    import numpy as np

    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int64)


def _masks(radius: int):
    import numpy as np

    return np.array([m for m in range(1 << 16) if m.bit_count() <= radius], dtype=np.uint64)


def image_pairs(train_hashes, eval_hashes, max_distance: int, block: int = 8192, max_candidates: int = 1 << 24):
    """All (train index, eval index, distance) with Hamming distance <= max_distance between two uint64 arrays, by
    multi-index hashing (see the module docstring): exact recall, numpy throughout."""
    import numpy as np

    t = np.asarray(train_hashes, dtype=np.uint64)
    e = np.asarray(eval_hashes, dtype=np.uint64)
    empty = np.zeros(0, dtype=np.int64)
    if not len(t) or not len(e):
        return empty, empty, empty
    masks = _masks(max_distance // _CHUNKS)
    found_t, found_e = [], []
    for c in range(_CHUNKS):
        shift = np.uint64(16 * c)
        ek = (e >> shift) & np.uint64(0xFFFF)
        order = np.argsort(ek, kind="stable")
        sk = ek[order]
        for start in range(0, len(t), block):
            tk = (t[start : start + block] >> shift) & np.uint64(0xFFFF)
            probes = (tk[:, None] ^ masks[None, :]).ravel()
            owner = np.repeat(np.arange(start, start + len(tk), dtype=np.int64), len(masks))
            lo = np.searchsorted(sk, probes, "left")
            cnt = np.searchsorted(sk, probes, "right") - lo
            hit = cnt > 0
            lo, cnt, owner = lo[hit], cnt[hit], owner[hit]
            # expand each probe's run of equal eval chunks, in slices that keep memory bounded
            ends = np.cumsum(cnt)
            i = 0
            while i < len(cnt):
                base = ends[i - 1] if i else 0
                j = max(i + 1, int(np.searchsorted(ends, base + max_candidates, "right")))
                c_cnt = cnt[i:j]
                offs = np.arange(int(c_cnt.sum()), dtype=np.int64) - np.repeat(np.cumsum(c_cnt) - c_cnt, c_cnt)
                ti = np.repeat(owner[i:j], c_cnt)
                ei = order[np.repeat(lo[i:j], c_cnt) + offs]
                d = _popcount(t[ti] ^ e[ei])
                keep = d <= max_distance
                found_t.append(ti[keep])
                found_e.append(ei[keep])
                i = j
    if not found_t:
        return empty, empty, empty
    ti, ei = np.concatenate(found_t), np.concatenate(found_e)
    key = np.unique(ti * len(e) + ei)  # a pair close in several chunks is found once per chunk
    ti, ei = key // len(e), key % len(e)
    return ti, ei, _popcount(t[ti] ^ e[ei])


# ---------------------------------------------------------------- texts

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.replace(IMAGE_PLACEHOLDER, " ")).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def _length_range(la: int, tau: float) -> tuple[float, float]:
    """The lengths a text can have and still score >= tau (ratio = 2*LCS/(la+lb) and LCS <= the shorter)."""
    return la * tau / (2 - tau), la * (2 - tau) / tau


def _specific_texts(records: Sequence[EvalRecord], min_chars: int, template_count: int) -> tuple[list, int, int]:
    """Normalised texts, None where too short or a template within this side; with how many of each were left out."""
    norm = [normalize_text(r.question) for r in records]
    counts = Counter(norm)
    out, short, templated = [], 0, 0
    for n in norm:
        if len(n) < min_chars:
            out.append(None)
            short += 1
        elif template_count and counts[n] >= template_count:
            out.append(None)
            templated += 1
        else:
            out.append(n)
    return out, short, templated


def text_pairs(
    train_texts: Sequence[str | None],
    eval_texts: Sequence[str | None],
    score: float,
    workers: int = -1,
    block: int = 256,
):
    """All (train index, eval index, score) with fuzz.ratio >= score: both sides sorted by length, each block of
    training texts scored (rapidfuzz `process.cdist`, C++, all cores, score_cutoff) against only the eval texts
    whose length allows the score. Exact. None entries take no part."""
    import numpy as np
    from rapidfuzz import fuzz, process

    tau = score / 100.0
    ev = sorted((len(s), j) for j, s in enumerate(eval_texts) if s is not None)
    tr = sorted((len(s), i) for i, s in enumerate(train_texts) if s is not None)
    if not ev or not tr:
        return []
    ev_lens = [n for n, _ in ev]
    ev_ids = np.array([j for _, j in ev], dtype=np.int64)
    ev_strs = [eval_texts[j] for _, j in ev]
    out = []
    for start in range(0, len(tr), block):
        chunk = tr[start : start + block]
        lo = _length_range(chunk[0][0], tau)[0]
        hi = _length_range(chunk[-1][0], tau)[1]
        a = bisect.bisect_left(ev_lens, math.ceil(lo - 1e-6))
        b = bisect.bisect_right(ev_lens, math.floor(hi + 1e-6))
        if a >= b:
            continue
        m = process.cdist(
            [train_texts[i] for _, i in chunk],
            ev_strs[a:b],
            scorer=fuzz.ratio,
            score_cutoff=score,
            dtype=np.float32,
            workers=workers,
        )
        rows, cols = np.nonzero(m >= score)
        out += [
            (chunk[r][1], int(ev_ids[a + c]), float(m[r, c])) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
    out.sort()
    return out


# ---------------------------------------------------------------- overlaps


@dataclass
class OverlapResult:
    pairs: list[dict]
    stats: dict


def _check_params(image_distance: int, text_score: float) -> None:
    if not 0 <= image_distance <= MAX_IMAGE_DISTANCE:
        raise Vr1Error(f"image distance {image_distance}: use 0..{MAX_IMAGE_DISTANCE} bits of the 64-bit pHash")
    if not 0 < text_score <= 100:
        raise Vr1Error(f"text score {text_score}: use a rapidfuzz ratio in (0, 100]")


def overlaps(
    train: Sequence[EvalRecord],
    evals: Sequence[EvalRecord],
    image_distance: int = IMAGE_DISTANCE,
    text_score: float = TEXT_SCORE,
    min_text_chars: int = MIN_TEXT_CHARS,
    template_count: int = TEMPLATE_COUNT,
    workers: int | None = None,
) -> OverlapResult:
    """`find_overlaps` on records, with the statistics a report needs."""
    import numpy as np

    _check_params(image_distance, text_score)
    t0 = time.time()
    hashes = hash_images([p for r in [*train, *evals] for p in r.images], workers=workers)
    unreadable = sorted(p for p, h in hashes.items() if h is None)

    def flat(records):
        owner, values = [], []
        for k, r in enumerate(records):
            for p in r.images:
                if hashes[p] is not None:
                    owner.append(k)
                    values.append(hashes[p])
        return np.array(owner, dtype=np.int64), np.array(values, dtype=np.uint64)

    t_owner, t_hash = flat(train)
    e_owner, e_hash = flat(evals)
    ti, ei, dist = image_pairs(t_hash, e_hash, image_distance)
    found: dict[tuple[int, int], dict] = {}
    for a, b, d in zip(t_owner[ti].tolist(), e_owner[ei].tolist(), dist.tolist(), strict=True):
        cur = found.setdefault((a, b), {"image_distance": None, "text_score": None})
        if cur["image_distance"] is None or d < cur["image_distance"]:
            cur["image_distance"] = int(d)
    t_hashed = time.time()

    train_texts, train_short, train_templates = _specific_texts(train, min_text_chars, template_count)
    eval_texts, eval_short, eval_templates = _specific_texts(evals, min_text_chars, template_count)
    for a, b, sc in text_pairs(train_texts, eval_texts, text_score):
        found.setdefault((a, b), {"image_distance": None, "text_score": None})["text_score"] = round(float(sc), 2)

    pairs = []
    for (a, b), hit in sorted(found.items()):
        why = "both" if hit["image_distance"] is not None and hit["text_score"] is not None else None
        why = why or ("image" if hit["image_distance"] is not None else "text")
        pairs.append(
            {
                "train_id": train[a].id,
                "train_source": train[a].source,
                "train_index": a,
                "eval_id": evals[b].id,
                "eval_benchmark": evals[b].benchmark,
                "image_distance": hit["image_distance"],
                "text_score": hit["text_score"],
                "why": why,
            }
        )
    stats = {
        "n_train": len(train),
        "n_eval": len(evals),
        "images_hashed": len(hashes),
        "unreadable_images": unreadable,
        "text_left_out": {
            "train_short": train_short,
            "train_template": train_templates,
            "eval_short": eval_short,
            "eval_template": eval_templates,
        },
        "seconds": {"images": round(t_hashed - t0, 2), "texts": round(time.time() - t_hashed, 2)},
    }
    return OverlapResult(pairs, stats)


def find_overlaps(
    train: Sequence[tuple[Sample, Path]] | Sequence[EvalRecord],
    evals: Sequence[EvalRecord],
    image_distance: int = IMAGE_DISTANCE,
    text_score: float = TEXT_SCORE,
    *,
    min_text_chars: int = MIN_TEXT_CHARS,
    template_count: int = TEMPLATE_COUNT,
    workers: int | None = None,
) -> list[dict]:
    """Every (training item, eval item) pair that shares a near-duplicate image or question, one dict each:
    train_id, train_source, train_index (position in `train`), eval_id, eval_benchmark, image_distance (the
    smallest pHash distance over the two items' image pairs; None when none is within `image_distance`),
    text_score (None when below `text_score` or not compared), why ("image", "text" or "both"). Sorted by
    train_index, then eval position."""
    records = [_train_record(item, k) for k, item in enumerate(train)]
    return overlaps(records, evals, image_distance, text_score, min_text_chars, template_count, workers).pairs


# ---------------------------------------------------------------- outputs


def clean_manifest(
    manifest: Manifest,
    samples: Sequence[Sample],
    drop_ids: Iterable[str],
    out_dir: str | Path,
    stem: str | None = None,
    note: str = "",
) -> tuple[Path, int]:
    """Write the samples whose id is not in `drop_ids` as vr1 JSONL (`<stem>.jsonl`) with a manifest
    (`<stem>.yaml`) beside it that points at the original image root, both atomically (the JSONL first, so a
    manifest never names a half-written file). Returns (manifest path, samples kept)."""
    import yaml

    from pipeline.io import atomic_write_text, write_jsonl

    drop = set(drop_ids)
    out_dir = Path(out_dir)
    stem = stem or manifest.name
    kept = [s for s in samples if s.id not in drop]
    write_jsonl(out_dir / f"{stem}.jsonl", (s.to_dict() for s in kept))
    raw: dict[str, Any] = {
        "name": manifest.name,
        "format": "vr1",
        "path": f"{stem}.jsonl",
        "image_root": str(Path(manifest.image_root).resolve()),
        "answer_type": "auto",
        "verify_images": manifest.verify_images,
    }
    for key in ("coord_frame", "license", "url"):
        if getattr(manifest, key):
            raw[key] = getattr(manifest, key)
    desc = f"{manifest.name} without {len(samples) - len(kept)} item(s) overlapping evaluation data"
    raw["description"] = desc + (f" ({note})" if note else "") + f"; from {manifest.path}"
    path = out_dir / f"{stem}.yaml"
    atomic_write_text(path, yaml.safe_dump(raw, sort_keys=False))
    return path, len(kept)


def drop_overlapping(
    train_items: Sequence[Any],
    against_manifests: Sequence[str | Path | Manifest],
    image_distance: int = IMAGE_DISTANCE,
    text_score: float = TEXT_SCORE,
    *,
    min_text_chars: int = MIN_TEXT_CHARS,
    template_count: int = TEMPLATE_COUNT,
    workers: int | None = None,
) -> tuple[list, dict]:
    """(kept items in order, report) for a stage's `decontam_against: [manifest, ...]`. Items are (Sample,
    image_root) pairs (`vr1 ptst`) or objects with uid/id, question and absolute images (`vr1 sft`). The report
    has the parameters, the counts and one row per dropped item with the eval item it matched first."""
    if not against_manifests:
        return list(train_items), {"against": [], "n_train": len(train_items), "n_dropped": 0, "dropped": []}
    records = [_train_record(item, k) for k, item in enumerate(train_items)]
    evals = [r for m in against_manifests for r in records_from_manifest(m)]
    res = overlaps(records, evals, image_distance, text_score, min_text_chars, template_count, workers)
    first: dict[int, dict] = {}
    for p in res.pairs:
        first.setdefault(p["train_index"], p)
    kept = [item for k, item in enumerate(train_items) if k not in first]
    report = {
        "against": [str(m.path if isinstance(m, Manifest) else m) for m in against_manifests],
        "image_distance": image_distance,
        "text_score": text_score,
        "n_train": len(train_items),
        "n_eval": len(evals),
        "n_dropped": len(first),
        "n_pairs": len(res.pairs),
        "dropped": [first[k] for k in sorted(first)],
        "stats": res.stats,
    }
    if first:
        LOG.info(
            "decontam: dropped %d of %d training items overlapping %s", len(first), len(records), report["against"]
        )
    return kept, report


# ---------------------------------------------------------------- the command


def _out(msg: str) -> None:
    print(msg, flush=True)  # noqa: T201 - the CLI's own summary output


def _stems(manifests: Sequence[Manifest]) -> list[str]:
    seen: Counter = Counter()
    out = []
    for m in manifests:
        stem = re.sub(r"[^\w.-]+", "_", m.name) or "train"
        seen[stem] += 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def run(args: argparse.Namespace) -> int:
    """`vr1 decontam`: overlaps.jsonl and summary.json under runs/decontam/<name>/, and with --write-clean one
    cleaned manifest per training manifest under clean/."""
    from pipeline.io import write_json, write_jsonl
    from pipeline.rundir import create_run_dir

    image_distance = getattr(args, "image_distance", IMAGE_DISTANCE)
    text_score = getattr(args, "text_score", TEXT_SCORE)
    min_chars = getattr(args, "min_text_chars", MIN_TEXT_CHARS)
    template_count = getattr(args, "template_count", TEMPLATE_COUNT)
    _check_params(image_distance, text_score)
    config = {
        "train": [str(p) for p in args.train],
        "eval": [str(p) for p in args.eval],
        "image_distance": image_distance,
        "text_score": text_score,
        "min_text_chars": min_chars,
        "template_count": template_count,
        "write_clean": bool(getattr(args, "write_clean", False)),
    }
    train_manifests = [Manifest.load(p) for p in args.train]
    eval_manifests = [Manifest.load(p) for p in args.eval]
    run_dir = create_run_dir("decontam", config, name=getattr(args, "name", None), root=args.runs_root)

    train_reads = [read_manifest(m, strict=False) for m in train_manifests]
    records, where = [], []
    for k, res in enumerate(train_reads):
        recs = records_from_samples(res.samples, res.manifest.image_root, "train")
        records += recs
        where += [k] * len(recs)
    evals = []
    eval_counts = {}
    for m in eval_manifests:
        recs = records_from_manifest(m)
        evals += recs
        eval_counts[m.name] = eval_counts.get(m.name, 0) + len(recs)

    res = overlaps(
        records, evals, image_distance, text_score, min_chars, template_count, getattr(args, "workers", None)
    )
    for p in res.pairs:
        p["train_manifest"] = train_manifests[where[p["train_index"]]].name
    write_jsonl(run_dir.file("overlaps.jsonl"), res.pairs)

    per_train = []
    drop: dict[int, set[str]] = defaultdict(set)
    for p in res.pairs:
        drop[where[p["train_index"]]].add(p["train_id"])
    stems = _stems(train_manifests)
    for k, (m, rr) in enumerate(zip(train_manifests, train_reads, strict=True)):
        mine = [p for p in res.pairs if where[p["train_index"]] == k]
        row = {
            "manifest": str(args.train[k]),
            "name": m.name,
            "n": len(rr.samples),
            "rejected": len(rr.rejects),
            "n_overlapping": len(drop[k]),
            "pairs_by_why": dict(Counter(p["why"] for p in mine)),
        }
        if config["write_clean"]:
            path, n_kept = clean_manifest(
                m, rr.samples, drop[k], run_dir.file("clean"), stems[k], note=f"vr1 decontam run {run_dir.name}"
            )
            row["clean_manifest"], row["n_kept"] = str(path), n_kept
        per_train.append(row)
    hit_eval = Counter(bench for bench, _ in {(p["eval_benchmark"], p["eval_id"]) for p in res.pairs})
    summary = {
        **config,
        "n_pairs": len(res.pairs),
        "pairs_by_why": dict(Counter(p["why"] for p in res.pairs)),
        "train": per_train,
        "eval": [{"name": n, "n": c, "n_hit": hit_eval[n]} for n, c in eval_counts.items()],
        **res.stats,
        "outputs": {"overlaps": str(run_dir.file("overlaps.jsonl")), "summary": str(run_dir.file("summary.json"))},
    }
    write_json(run_dir.file("summary.json"), summary)

    _out(
        f"decontam: {len(records)} training items vs {len(evals)} eval items: {len(res.pairs)} overlapping pair(s) "
        f"{dict(Counter(p['why'] for p in res.pairs))} (image distance <= {image_distance}, text score >= {text_score})"
    )
    for row in per_train:
        line = f"  {row['name']}: {row['n_overlapping']} of {row['n']} training items overlap"
        if "clean_manifest" in row:
            line += f"; clean ({row['n_kept']} kept): {row['clean_manifest']}"
        _out(line)
    for row in summary["eval"]:
        _out(f"  eval {row['name']}: {row['n_hit']} of {row['n']} items matched")
    if res.stats["unreadable_images"]:
        _out(f"  {len(res.stats['unreadable_images'])} image(s) could not be read (listed in summary.json)")
    _out(f"wrote {run_dir.file('overlaps.jsonl')} and {run_dir.file('summary.json')}")
    run_dir.mark_latest()
    return 0


def register(sub) -> argparse.ArgumentParser:
    """Add `vr1 decontam` to the CLI's subparsers."""
    sp = sub.add_parser(
        "decontam",
        help="find training items that near-duplicate eval items (images by pHash, questions by rapidfuzz)",
        description="Compare training manifests with eval manifests: images by perceptual hash (robust to "
        "re-encoding and resizing), questions by fuzzy ratio. Writes runs/decontam/<name>/overlaps.jsonl and "
        "summary.json; with --write-clean a cleaned vr1 manifest per training manifest under clean/.",
    )
    sp.add_argument("--train", nargs="+", required=True, metavar="MANIFEST", help="training manifests")
    sp.add_argument("--eval", nargs="+", required=True, metavar="MANIFEST", help="eval/benchmark manifests")
    sp.add_argument("--name", help="run name (default: a timestamp)")
    sp.add_argument("--runs-root", default="runs", help="where run directories go")
    sp.add_argument("--write-clean", action="store_true", help="write each training set without its overlaps")
    sp.add_argument(
        "--image-distance",
        type=int,
        default=IMAGE_DISTANCE,
        metavar="D",
        help=f"max pHash Hamming distance (of 64 bits) for an image match (default {IMAGE_DISTANCE})",
    )
    sp.add_argument(
        "--text-score",
        type=float,
        default=TEXT_SCORE,
        metavar="S",
        help=f"min rapidfuzz ratio (0-100) of normalised questions for a text match (default {TEXT_SCORE:g})",
    )
    sp.add_argument(
        "--min-text-chars",
        type=int,
        default=MIN_TEXT_CHARS,
        help=f"questions shorter than this (normalised) are compared by image only (default {MIN_TEXT_CHARS})",
    )
    sp.add_argument(
        "--template-count",
        type=int,
        default=TEMPLATE_COUNT,
        help="a question that occurs this often on its own side is a template, compared by image only "
        f"(default {TEMPLATE_COUNT}; 0: never)",
    )
    sp.add_argument("--workers", type=int, help="image hashing threads (default: up to 8)")
    sp.set_defaults(func=run)
    return sp
