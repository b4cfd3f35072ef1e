"""The `vr1` command line: one subcommand per stage plus the data and model utilities.

Stage commands take `--config NAME_OR_FILE` and any number of `key.sub=value` overrides and write one run
directory `runs/<stage>/<name>/`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import Vr1Error

# Stage name -> (one-line help, issue that delivers it, entry "module:function" once it exists).
STAGES: dict[str, tuple[str, str, str | None]] = {
    "coldstart": (
        "cold start by modality bridging: pseudo-CoT, description, reasoning, filter",
        "#3",
        "coldstart.main:run",
    ),
    "sft": ("supervised fine-tuning of the base VLM on the cold-start set", "#5", "rl.sft.main:run"),
    "ptst": ("PTST: staged GRPO with the hard format-result reward (verl or TRL)", "#6", "rl.ptst.main:run"),
    "eval": ("evaluate a model on benchmarks, score predictions, compare runs", "#15", "rl.eval.run:run"),
}
INSPECT_ENTRY = "coldstart.inspect:run"
GRADE_ENTRY = "rl.rewards.grade:run"
ANSWER_TYPES = ("choice", "number", "expression", "text", "label", "bbox", "boxes")


def _out(msg: str) -> None:
    print(msg, flush=True)  # noqa: T201 - the CLI's own summary output


def cmd_demo_data(args) -> int:
    from pipeline.data.demo_data import TASK_FUNCS, TASKS, generate_demo_data

    tasks = tuple(args.tasks.split(",")) if args.tasks else TASKS
    unknown = set(tasks) - set(TASK_FUNCS)
    if unknown:
        raise Vr1Error(f"unknown task(s) {sorted(unknown)}; choose from {list(TASK_FUNCS)}")
    splits = None
    if args.splits:
        try:
            splits = {k: int(v) for k, v in (part.split("=") for part in args.splits.split(","))}
        except ValueError:
            raise Vr1Error(f"--splits {args.splits!r}: write name=size pairs, e.g. teacher=400,test=200") from None
    t0 = time.time()
    written = generate_demo_data(
        args.out, n_train=args.n, n_test=args.n_test, seed=args.seed, tasks=tasks, splits=splits
    )
    dt = time.time() - t0
    total = sum(splits.values()) if splits else args.n + args.n_test
    _out(f"demo data: {total} samples in {dt:.1f}s ({total / dt:.0f}/s)")
    for split, path in written.items():
        _out(f"  {split}: {path}  (manifest: {Path(args.out) / f'manifest_{split}.yaml'})")
    return 0


def cmd_tiny_model(args) -> int:
    from pipeline.models.tiny import build_tiny_model, folder_digest

    families = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl"] if args.family == "all" else [args.family]
    for fam in families:
        out = Path(args.out) / fam if len(families) > 1 else Path(args.out)
        build_tiny_model(fam, out, seed=args.seed, overwrite=args.overwrite)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        _out(f"tiny {fam}: {out}  ({size / 1e6:.1f} MB, digest {folder_digest(out)[:12]})")
    return 0


def cmd_check_data(args) -> int:
    from pipeline.data.check import check_manifest
    from pipeline.io import write_json, write_jsonl
    from pipeline.rundir import create_run_dir

    run = create_run_dir("check-data", {"manifests": args.manifests}, name=args.name, root=args.runs_root)
    reports, bad = [], 0
    rejects = []
    for m in args.manifests:
        rep = check_manifest(m)
        reports.append(rep.as_dict())
        rejects += [e.as_record() for e in rep.problems]
        bad += len(rep.problems)
        _out(
            f"{m}: {rep.n_samples} ok, {len(rep.problems)} problems, {len(rep.skipped)} skipped; "
            f"answer types {dict(rep.answer_types)}"
        )
        for e in rep.problems[: args.show]:
            _out(f"  {e}")
        if len(rep.problems) > args.show:
            _out(f"  … {len(rep.problems) - args.show} more in {run.file('rejects.jsonl')}")
    write_json(run.file("report.json"), reports)
    write_jsonl(run.file("rejects.jsonl"), rejects)
    _out(f"wrote {run.file('report.json')} and {run.file('rejects.jsonl')}")
    run.mark_latest()
    return 1 if bad and not args.allow_problems else 0


def cmd_split(args) -> int:
    from pipeline.data.fewshot import write_split

    report = write_split(args.manifest, args.shots, args.seed, args.out)
    _out(
        f"{args.shots}-shot split (seed {args.seed}): {report['train']} train, {report['test']} test over "
        f"{report['classes']} classes -> {args.out}/train.yaml, test.yaml, split.json"
    )
    if report["short_classes"]:
        _out(f"  classes with fewer than {args.shots} examples in the whole set: {report['short_classes']}")
    return 0


def cmd_perception_data(args) -> int:
    from pipeline.data.perception_demo import write_perception_demo

    counts = write_perception_demo(args.demo, args.out, args.seed)
    for task, n in counts.items():
        _out(
            f"  {task}: {n.get('train', 0)} train, {n.get('test', 0)} test -> "
            f"{args.out}/manifest_{task}_{{train,test}}.yaml"
        )
    _out(f"perception demo sets written to {args.out}/")
    return 0


def call_entry(entry: str, args: argparse.Namespace) -> int:
    """Run `module:function` (the way console-script entry points name a command), so that this package never
    imports a stage: the stages build on pipeline, never the other way round."""
    import importlib

    module, fn = entry.split(":")
    return getattr(importlib.import_module(module), fn)(args)


def _stage_runner(stage: str) -> Callable[[argparse.Namespace], int]:
    def run(args) -> int:
        help_text, issue, entry = STAGES[stage]
        if entry is None:
            raise Vr1Error(f"`vr1 {stage}` ({help_text}) is not in this build yet; it arrives with issue {issue}")
        return call_entry(entry, args)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vr1", description="Vision-R1-style multimodal reasoning pipeline.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for stage, (help_text, _, _) in STAGES.items():
        sp = sub.add_parser(stage, help=help_text, description=help_text)
        sp.add_argument("--config", default=f"{stage}/demo", help="config name under configs/ or a YAML path")
        sp.add_argument(
            "--name",
            help="run name (default: a timestamp; for ptst the config's name, so its stages "
            "share one run); reusing a name resumes that run",
        )
        sp.add_argument("--runs-root", default="runs", help="where run directories go")
        sp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. run.seed=3")
        if stage == "ptst":
            sp.add_argument("--dry-run", action="store_true", help="print each stage's exact verl command and stop")
        if stage == "eval":
            sp.add_argument("--compare", nargs="+", metavar="RUN", help="print one table of these runs, with deltas")
            sp.add_argument("--predictions", metavar="FILE.jsonl", help="score these responses (score-only mode)")
            sp.add_argument("--benchmark", help="score-only: the benchmark's name (mathvista, rec, …)")
            sp.add_argument("--data", help="score-only: the benchmark's data as published (file or folder)")
            sp.add_argument("--image-root", help="score-only: where the data's images are")
            sp.add_argument("--tokenizer", help="score-only: count lengths in this tokenizer's tokens")
        sp.set_defaults(func=_stage_runner(stage))

    call_entry("rl.eval.decontam:register", sub)  # `vr1 decontam`: its parser lives with it

    sp = sub.add_parser(
        "split",
        help="k-shot split of a classification or detection manifest (Visual-RFT's few-shot setting)",
        description="Write OUT/train.yaml (k examples per class, or images until every category has k instances) "
        "and OUT/test.yaml (the rest), deterministic per seed.",
    )
    sp.add_argument("manifest", metavar="MANIFEST")
    sp.add_argument("--shots", type=int, required=True, choices=(1, 2, 4, 8, 16))
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", required=True, metavar="DIR")
    sp.set_defaults(func=cmd_split)

    sp = sub.add_parser(
        "perception-data",
        help="REC, OVD, detection, classification and grounding sets from the demo data's object annotations",
        description="Write OUT/<task>_<split>.jsonl and OUT/manifest_<task>_<split>.yaml for each perception task, "
        "from DEMO/manifest_train.yaml and DEMO/manifest_test.yaml.",
    )
    sp.add_argument("--demo", default="data/demo", metavar="DEMO")
    sp.add_argument("--out", default="data/demo/perception", metavar="OUT")
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_perception_data)

    sp = sub.add_parser(
        "doctor",
        help="what the verl path (GPU clusters) needs here, and what is missing",
        description="Probe every import the verl PTST path needs (verl, ray, vLLM, torchvision, qwen-vl-utils, "
        "flash-attn) and the CUDA devices; exit 1 with the fix when something is missing.",
    )
    sp.set_defaults(func=lambda args: __import__("pipeline.env", fromlist=["doctor"]).doctor(args))

    sp = sub.add_parser(
        "inspect",
        help="HTML report and terminal views of a cold-start run",
        description="Write a static HTML report of a cold-start run (default: the latest) and print "
        "its path; or pretty-print samples in the terminal.",
    )
    sp.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a runs/coldstart/<name> directory")
    sp.add_argument("--sample", help="print this sample (id or source/id)")
    sp.add_argument("--dropped-by", help="print samples dropped by this rule")
    sp.add_argument("--limit", type=int, default=5)
    sp.add_argument("--runs-root", default="runs")
    sp.set_defaults(func=lambda args: call_entry(INSPECT_ENTRY, args))

    sp = sub.add_parser(
        "grade",
        help="explain how one answer is graded",
        description="Grade PREDICTION against GOLD as the rewards and the cold-start filter do, and say why: the "
        "answer that was graded, how both sides were read, the rule that decided, and every reward component.",
    )
    sp.add_argument("gold", metavar="GOLD")
    sp.add_argument("prediction", metavar="PREDICTION", help="a final answer, or with --response a whole model output")
    sp.add_argument("--type", required=True, choices=ANSWER_TYPES, help="the answer type")
    sp.add_argument("--response", action="store_true", help="PREDICTION is a full response: check its format too")
    sp.add_argument("--choices", nargs="+", metavar="OPTION", help="the options of a choice question, in order")
    sp.add_argument("--reward", help="a reward preset (default: the answer type's)")
    sp.add_argument("--info", help="more reward input as JSON, e.g. coord_frame, image_sizes, number_rel_tol")
    sp.add_argument("--json", action="store_true", help="print the explanation as one JSON object")
    sp.set_defaults(func=lambda args: call_entry(GRADE_ENTRY, args))

    sp = sub.add_parser(
        "demo-data",
        help="generate the synthetic demo data set",
        description="Draw the synthetic demo set (counting, colour/shape, bar charts, geometry, two-image "
        "comparison) with scene annotations and reference solutions.",
    )
    sp.add_argument("--out", default="data/demo")
    sp.add_argument("--n", type=int, default=2000, help="training samples")
    sp.add_argument("--n-test", type=int, default=200, help="held-out samples")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--tasks", help="comma-separated subset of tasks")
    sp.add_argument("--splits", help="named splits instead of train/test, e.g. teacher=400,cold=48,rl=800,test=200")
    sp.set_defaults(func=cmd_demo_data)

    sp = sub.add_parser(
        "tiny-model",
        help="build a tiny random-init VLM offline",
        description="Build a tiny random-init model (hub folder layout) of a supported family.",
    )
    sp.add_argument("--family", required=True, choices=["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "all"])
    sp.add_argument("--out", required=True, help="output folder (with --family all: one subfolder per family)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    sp.set_defaults(func=cmd_tiny_model)

    sp = sub.add_parser(
        "check-data",
        help="validate data manifests before any stage uses them",
        description="Read manifests leniently; list every bad record by file, line and field.",
    )
    sp.add_argument("manifests", nargs="+", metavar="MANIFEST")
    sp.add_argument("--name", help="run name")
    sp.add_argument("--runs-root", default="runs")
    sp.add_argument("--show", type=int, default=20, help="problems to print per manifest")
    sp.add_argument("--allow-problems", action="store_true", help="exit 0 even when problems are found")
    sp.set_defaults(func=cmd_check_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Vr1Error as e:
        print(f"vr1 {args.command}: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        print(f"vr1 {args.command}: interrupted", file=sys.stderr)  # noqa: T201
        return 130


if __name__ == "__main__":
    sys.exit(main())
