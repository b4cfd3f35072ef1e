"""`vr1 coldstart`: modality bridging end to end, resumable by rerunning the same command (same `--name`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from coldstart.config import ColdStartConfig
from coldstart.output import build_records, filter_report, write_outputs
from coldstart.runner import Generation, uid
from coldstart.steps import load_steps
from coldstart.store import StepStore
from coldstart.summary import invocation, read_previous, run_summary, summary_lines
from pipeline.config import load_config, project_path, require_paths, to_dict
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.errors import ConfigError, Vr1Error
from pipeline.generation import make_backend
from pipeline.io import write_json, write_jsonl
from pipeline.progress import LOG
from pipeline.rundir import create_run_dir


def load_samples(cfg: ColdStartConfig, run_path: Path):
    samples, roots, rejects, seen = [], {}, [], set()
    for ref in cfg.data.manifests:
        manifest = Manifest.load(project_path(ref))
        result = read_manifest(manifest, strict=cfg.data.strict)
        rejects += [e.as_record() for e in result.rejects + result.skipped]
        LOG.info("%s", result.summary())
        for s in result.samples[: cfg.data.limit] if cfg.data.limit else result.samples:
            if roots.setdefault(s.source, manifest.image_root) != manifest.image_root:
                raise ConfigError(f"two manifests give source '{s.source}' different image roots")
            if uid(s) in seen:
                raise ConfigError(f"sample {uid(s)} appears in two manifests")
            seen.add(uid(s))
            samples.append(s)
    write_jsonl(run_path / "rejects.jsonl", rejects)
    write_json(run_path / "image_roots.json", {src: str(root) for src, root in roots.items()})  # for `vr1 inspect`
    return samples, roots, len(rejects)


def _teachers(cfg: ColdStartConfig) -> dict:
    vlm = make_backend(cfg.vlm)
    # One in-process model serves both roles when they name the same checkpoint (the demo).
    same = cfg.vlm.backend == cfg.reasoner.backend == "transformers" and cfg.vlm == cfg.reasoner
    return {"vlm": vlm, "reasoner": vlm if same else make_backend(cfg.reasoner)}


async def _generate(gen_args, samples, cfg: ColdStartConfig):
    teachers = _teachers(cfg)
    gen = Generation(teachers=teachers, **gen_args)
    try:
        await gen.run(samples, cfg.run.mode, cfg.run.max_in_flight)
    finally:
        for t in {id(t): t for t in teachers.values()}.values():
            await t.aclose()
    return gen


def run(args) -> int:
    cfg = load_config(ColdStartConfig, args.config, args.overrides)
    secret_envs = [n for n in (cfg.vlm.api_key_env, cfg.reasoner.api_key_env) if n]
    require_paths("manifest", {f"data.manifests[{i}]": ref for i, ref in enumerate(cfg.data.manifests)})
    require_paths("prompt file", {f"prompts.{name}": ref for name, ref in vars(cfg.prompts).items()})
    run_dir = create_run_dir(
        "coldstart", to_dict(cfg), name=args.name, root=args.runs_root, secret_env_names=secret_envs
    )
    started, t0 = time.time(), time.perf_counter()
    steps = load_steps({name: str(project_path(p)) for name, p in vars(cfg.prompts).items()})
    samples, roots, n_rejects = load_samples(cfg, run_dir.path)
    if not samples:
        raise Vr1Error("no samples to process (check data.manifests and rejects.jsonl)")
    LOG.info("cold start on %d samples; run directory %s", len(samples), run_dir.path)
    stores = {st.name: StepStore(run_dir.path / "steps" / f"{st.name}.jsonl", fsync=cfg.run.fsync) for st in steps}
    stored = {name: len(store.ok) for name, store in stores.items() if store.ok}
    if stored:
        LOG.info("resuming: answers already stored %s; requests that did not change reuse them", stored)
    try:
        gen = asyncio.run(
            _generate(
                {"steps": steps, "stores": stores, "image_roots": roots, "retry_failed": cfg.run.retry_failed},
                samples,
                cfg,
            )
        )
    finally:
        for store in stores.values():
            store.close()
    for role, stats in gen.stats.items():
        LOG.info("%s: asked %d, reused %d stored answers, %d failed", role, stats.requests, stats.reused, stats.failed)
    records = build_records(samples, gen.results, cfg.filter, cfg.output.answer_layout)
    written = write_outputs(run_dir.path, samples, records, roots, cfg.output.sharegpt, cfg.output.hf)
    this = invocation(started, time.perf_counter() - t0, len(samples), {r: vars(s) for r, s in gen.stats.items()})
    extra = {"rejected_records": n_rejects, "outputs": {k: str(v) for k, v in written.items()}}
    summary = run_summary(read_previous(run_dir.file("summary.json")), this, records, filter_report(records), extra)
    write_json(run_dir.file("summary.json"), summary)
    print("\n".join(summary_lines(summary, run_dir.path)), flush=True)  # noqa: T201 - the command's closing summary
    if summary["failed"] == len(samples):
        cause, n = next(iter(summary["failed_by_cause"].items()))
        raise Vr1Error(
            f"every one of the {len(samples)} samples failed ({n}x: {cause}); check the vlm/reasoner base_url, model "
            f"and api_key_env against the server (details in {run_dir.log_file}), then rerun the same command"
        )
    run_dir.mark_latest()
    return 0
