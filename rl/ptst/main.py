"""`vr1 ptst`: the PTST schedule, stage by stage. Stage k starts from stage k-1's final checkpoint; a stage that
was interrupted resumes from its last checkpoint when the same command is run again (same --name)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.config import find_config, load_config, require_paths, to_dict
from pipeline.errors import Vr1Error
from pipeline.io import write_json
from pipeline.progress import LOG
from pipeline.rundir import create_run_dir
from rl.ptst.config import PTSTConfig


def resolve_engine(cfg: PTSTConfig) -> str:
    if cfg.engine != "auto":
        return cfg.engine
    import torch

    return "verl" if torch.cuda.is_available() else "trl"


def stage_start(cfg: PTSTConfig, run_dir: Path, k: int) -> Path:
    """Where stage k starts; refuses, naming what is missing and how to make it, when that is not there."""
    start = Path(cfg.model.start) if k == 1 else run_dir / f"stage_{k - 1}" / "final"
    if not (start / "config.json").is_file():
        how = (
            "run `make sft` (or point model.start at an SFT output)"
            if k == 1
            else f"run stage {k - 1} first: `make ptst STAGE={k - 1}` (or `make ptst` for all stages in order)"
        )
        raise Vr1Error(f"stage {k} starts from {start}, which is not there: {how}")
    return start.resolve()


def prepare_data(cfg: PTSTConfig, run_dir: Path, start: Path, engine: str) -> dict:
    """Validate the prompt sets once per run and write them for the engine (parquet for verl, rows for TRL)."""
    from pipeline.models.load import load_processor, set_pixel_budget
    from rl.ptst.data import load_split, processor_budget, trl_rows, validate, write_parquet

    data_dir = run_dir / "data"
    processor = load_processor(start)
    native = processor_budget(processor) if engine == "verl" else None  # verl's processor keeps the model's own
    set_pixel_budget(processor, cfg.data.min_pixels, cfg.data.max_pixels)
    measured: dict = {}
    train, problems = validate(
        load_split(cfg.data.manifests, cfg.data.limit), processor, cfg.data, cfg.grpo.system_prompt, native, measured
    )
    val, val_problems = validate(
        load_split(cfg.data.val_manifests, cfg.data.val_limit), processor, cfg.data, cfg.grpo.system_prompt, native
    )
    write_json(
        data_dir / "validation.json",
        {"train": len(train), "val": len(val), "excluded": problems, "val_excluded": val_problems},
    )
    write_json(data_dir / "prompt_tokens.json", measured)
    if not train:
        raise Vr1Error(f"no valid RL prompts (see {data_dir / 'validation.json'})")
    if problems:
        LOG.warning(
            "%d prompt(s) left out of RL (unparseable gold or over max_prompt_length); see %s",
            len(problems),
            data_dir / "validation.json",
        )
    if engine == "verl":
        return {
            "train": str(write_parquet(train, data_dir / "train.parquet", "train", cfg.data, cfg.grpo.system_prompt)),
            "val": str(
                write_parquet(val or train[:1], data_dir / "val.parquet", "val", cfg.data, cfg.grpo.system_prompt)
            ),
        }
    return {"rows": trl_rows(train, cfg.data, cfg.grpo.system_prompt)}


def run(args) -> int:
    cfg = load_config(PTSTConfig, args.config, args.overrides)
    name = args.name or find_config(args.config).stem  # stages of one schedule share a run directory
    for key in ("manifests", "val_manifests"):
        paths = {f"data.{key}[{i}]": ref for i, ref in enumerate(getattr(cfg.data, key))}
        require_paths("manifest", paths, resolve=Path)
    # absolute: verl's Ray workers (other nodes included) read these paths
    run = create_run_dir("ptst", to_dict(cfg), name=name, root=args.runs_root)
    run_dir = run.path.resolve()
    engine = resolve_engine(cfg)
    stages = [cfg.stage] if cfg.stage else list(range(1, len(cfg.stages) + 1))
    data = None
    results = []
    for k in stages:
        stage = cfg.stages[k - 1]
        stage_dir = run_dir / f"stage_{k}"
        if (stage_dir / "summary.json").is_file() and not args.dry_run:
            LOG.info("stage %d is complete (%s); skipping", k, stage_dir / "final")
            results.append(json.loads((stage_dir / "summary.json").read_text()))
            continue
        start = stage_start(cfg, run_dir, k)
        stage_dir.mkdir(parents=True, exist_ok=True)
        if data is None:
            data = prepare_data(cfg, run_dir, start, engine)
        t0 = time.perf_counter()
        LOG.info(
            "stage %d/%d on %s: %d tokens x %d samples, %d steps, from %s",
            k,
            len(cfg.stages),
            engine,
            stage.max_response_length,
            stage.n,
            stage.steps,
            start,
        )
        if engine == "verl":
            from rl.ptst.verl_engine import run_stage

            result = run_stage(cfg, k, stage, start, stage_dir, data, name, dry_run=args.dry_run)
        else:
            if args.dry_run:
                raise Vr1Error("--dry-run prints verl's command; the TRL engine has none (use engine=verl)")
            from rl.ptst.trl_engine import run_stage

            result = run_stage(cfg, k, stage, start, stage_dir, data["rows"])
        if args.dry_run:
            results.append(result)
            continue
        result.update(
            start=str(start),
            wall_s=round(time.perf_counter() - t0, 1),
            schedule={"max_response_length": stage.max_response_length, "n": stage.n, "steps": stage.steps},
        )
        write_json(stage_dir / "summary.json", result)
        results.append(result)
        print(f"ptst stage {k}: {result['steps']} steps on {engine} in {result['wall_s']}s -> {result['final']}")  # noqa: T201
    if not args.dry_run:
        print(  # noqa: T201
            f"  wrote {run_dir}/: stage_N/final (HF model folders), stage_N/metrics.jsonl, "
            "stage_N/checkpoints, stage_N/tensorboard, data/validation.json"
        )
        run.mark_latest()
    return 0
