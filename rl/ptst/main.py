"""`vr1 ptst`: the PTST schedule, stage by stage. Stage k starts from stage k-1's final checkpoint; a stage that
was interrupted resumes from its last checkpoint when the same command is run again (same --name).

Before anything starts (a Ray cluster, a trainer) the run is checked: the start model is a local folder or a hub
id, the reward can score every answer type in the data, validation shares no item with training, the verl
environment is complete, and the memory a stage needs fits the nodes (an estimate, printed per stage)."""

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


def resolve_engine(cfg: PTSTConfig, dry_run: bool = False) -> str:
    """auto: verl where CUDA is, TRL elsewhere; a dry run shows verl's command wherever it is asked for."""
    if cfg.engine != "auto":
        return cfg.engine
    if dry_run:
        return "verl"
    import torch

    return "verl" if torch.cuda.is_available() else "trl"


def first_start(cfg: PTSTConfig, run_dir: Path, engine: str, planned: bool = False) -> tuple[str, Path]:
    """(what stage 1 loads, a local folder with its processor files). A LoRA SFT output that was never merged
    (an adapter folder, or an SFT run whose final/ is missing beside adapter/) is merged into run_dir/start first:
    starting from its base would drop the SFT training."""
    from pipeline.models.merge import adapter_base, adapter_folder, merge_adapter
    from rl.ptst.preflight import start_reference

    adapter = adapter_folder(Path(cfg.model.start))
    if adapter is not None:
        merged = run_dir / "start"
        if planned and not (merged / "config.json").is_file():  # a plan merges nothing; the base has the processor
            return str(merged), start_reference(adapter_base(adapter))[1]
        if not (merged / "config.json").is_file():
            LOG.info("model.start holds a LoRA adapter (%s): merging it into its base -> %s", adapter, merged)
            merge_adapter(adapter, merged)
        return str(merged), merged
    ref, local = start_reference(cfg.model.start)
    if engine == "trl" and ref != str(local):  # one machine: the whole hub snapshot, weights included
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(ref))
        ref = str(local)
    return ref, local


def stage_start(cfg: PTSTConfig, run_dir: Path, k: int, first: tuple[str, Path], planned: bool = False) -> str:
    """What stage k loads; refuses, naming what is missing and how to make it, when that is not there. A plan
    (`planned`, the dry run) names where stage k-1 will leave its output without asking for it to exist."""
    if k == 1:
        return first[0]
    start = run_dir / f"stage_{k - 1}" / "final"
    if not planned and not (start / "config.json").is_file():
        raise Vr1Error(
            f"stage {k} starts from {start}, which is not there: run stage {k - 1} first: "
            f"`make ptst STAGE={k - 1}` (or `make ptst` for all stages in order)"
        )
    return str(start)


def prepare_data(cfg: PTSTConfig, run_dir: Path, start: Path, engine: str) -> dict:
    """Validate the prompt sets once per run and write them for the engine (parquet for verl, rows for TRL);
    refuses a reward that cannot score the data and a validation set that shares items with training."""
    from pipeline.data.overlap import overlap
    from pipeline.models.load import load_processor, set_pixel_budget
    from rl.ptst.data import load_split, policy_frame, processor_budget, trl_rows, validate, write_parquet
    from rl.ptst.preflight import check_reward, describe_plan

    data_dir = run_dir / "data"
    train_items = load_split(cfg.data.manifests, cfg.data.limit, cfg.data.mix, cfg.data.mix_seed)
    val_items = load_split(cfg.data.val_manifests, cfg.data.val_limit)
    decontam = {"n_dropped": 0}
    if cfg.data.decontam_against:
        from rl.eval.decontam import drop_overlapping

        train_items, decontam = drop_overlapping(train_items, cfg.data.decontam_against)
        LOG.info("decontam: %d training prompt(s) duplicate an eval item; left out", decontam["n_dropped"])
    frame = policy_frame(cfg.data, start)
    plan = check_reward(cfg.data, train_items + val_items, frame)
    LOG.info("reward %s: %s", cfg.data.reward, describe_plan(plan))
    if any(t in plan for t in ("bbox", "boxes")):
        LOG.info("boxes: the policy writes them in the %s frame (data.pred_frame=%s)", frame, cfg.data.pred_frame)
    shared = overlap(train_items, val_items)
    if shared:
        raise Vr1Error(
            f"{len(shared)} validation item(s) also appear in training (same source/id or the same image), "
            f"e.g. {shared[0][0].source}/{shared[0][0].id}: validation would measure memory, not generalisation. "
            "Use held-out manifests for data.val_manifests (see data_manifests/*_val.yaml)"
        )
    processor = load_processor(start)
    native = processor_budget(processor) if engine == "verl" else None  # verl's processor keeps the model's own
    set_pixel_budget(processor, cfg.data.min_pixels, cfg.data.max_pixels)
    measured: dict = {}
    train, problems = validate(train_items, processor, cfg.data, cfg.grpo.system_prompt, native, measured)
    val, val_problems = validate(val_items, processor, cfg.data, cfg.grpo.system_prompt, native)
    write_json(
        data_dir / "validation.json",
        {
            "train": len(train),
            "val": len(val),
            "excluded": problems,
            "val_excluded": val_problems,
            "decontam": decontam,
        },
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
            "answer_types": sorted(plan),
            "train": str(
                write_parquet(train, data_dir / "train.parquet", "train", cfg.data, cfg.grpo.system_prompt, frame)
            ),
            "val": str(
                write_parquet(
                    val or train[:1], data_dir / "val.parquet", "val", cfg.data, cfg.grpo.system_prompt, frame
                )
            ),
        }
    return {"rows": trl_rows(train, cfg.data, cfg.grpo.system_prompt, frame)}


def run(args) -> int:
    cfg = load_config(PTSTConfig, args.config, args.overrides)
    name = args.name or find_config(args.config).stem  # stages of one schedule share a run directory
    for key in ("manifests", "val_manifests"):
        paths = {f"data.{key}[{i}]": ref for i, ref in enumerate(getattr(cfg.data, key))}
        require_paths("manifest", paths, resolve=Path)
    engine = resolve_engine(cfg, args.dry_run)
    if args.dry_run and engine != "verl":
        raise Vr1Error("--dry-run prints verl's command; the TRL engine has none (use engine=verl or auto)")
    if engine == "verl":
        from pipeline.env import verl_readiness

        missing = verl_readiness(need_gpu=not args.dry_run).problems
        if missing and not args.dry_run:
            raise Vr1Error("the verl path cannot start here:\n  - " + "\n  - ".join(missing))
        for problem in missing:
            LOG.warning("not ready for a real launch: %s", problem)
    if cfg.eval:  # a typo in the eval config fails now, not after the last stage
        from rl.eval.config import EvalConfig

        load_config(EvalConfig, cfg.eval, [])
    # absolute: verl's Ray workers (other nodes included) read these paths
    run = create_run_dir("ptst", to_dict(cfg), name=name, root=args.runs_root)
    run_dir = run.path.resolve()
    stages = [cfg.stage] if cfg.stage else list(range(1, len(cfg.stages) + 1))
    first = first_start(cfg, run_dir, engine, planned=args.dry_run)
    if engine == "verl":
        from rl.ptst.preflight import check_verl_family

        check_verl_family(first[1])
    data = None
    results = []
    for k in stages:
        stage = cfg.stages[k - 1]
        stage_dir = run_dir / f"stage_{k}"
        if (stage_dir / "summary.json").is_file() and not args.dry_run:
            LOG.info("stage %d is complete (%s); skipping", k, stage_dir / "final")
            results.append(json.loads((stage_dir / "summary.json").read_text()))
            continue
        start = stage_start(cfg, run_dir, k, first, planned=args.dry_run)
        stage_dir.mkdir(parents=True, exist_ok=True)
        if data is None:  # the processor of the stage's start; before it exists (a plan), its lineage's
            local = Path(start) if (Path(start) / "config.json").is_file() else first[1]
            data = prepare_data(cfg, run_dir, local, engine)
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
            from rl.ptst.memory import check_memory
            from rl.ptst.verl_engine import run_stage

            check_memory(cfg, stage, first[1], run_dir / "data")
            from_files = Path(start) if (Path(start) / "config.json").is_file() else first[1]
            result = run_stage(cfg, k, stage, start, stage_dir, data, name, args.dry_run, start_files=from_files)
        else:
            from rl.ptst.trl_engine import run_stage

            result = run_stage(cfg, k, stage, Path(start), stage_dir, data["rows"])
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
    if args.dry_run:
        print(f"dry run: nothing launched; data and plans written under {run_dir}/ (latest not moved)")  # noqa: T201
    else:
        print(  # noqa: T201
            f"  wrote {run_dir}/: stage_N/final (HF model folders), stage_N/metrics.jsonl, "
            "stage_N/checkpoints, stage_N/tensorboard, data/validation.json"
        )
        run.mark_latest()
        if cfg.eval and stages[-1] == len(cfg.stages):
            evaluate_final(cfg.eval, results[-1]["final"], f"ptst-{name}", args.runs_root)
    return 0


def evaluate_final(eval_config: str, final: str, name: str, runs_root: str) -> None:
    """`vr1 eval --config EVAL --name NAME model.model=FINAL`: the config's benchmarks on the schedule's output.
    Training is done (and `latest` moved) before this runs: an eval that fails exits non-zero with its own cause."""
    import argparse

    from rl.eval.run import run_generate

    LOG.info("evaluating %s with eval config %s", final, eval_config)
    run_generate(
        argparse.Namespace(config=eval_config, overrides=[f"model.model={final}"], name=name, runs_root=runs_root)
    )
