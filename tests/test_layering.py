"""Imports flow one way: pipeline is the ground every stage stands on, the stages meet only through files and
pipeline, and inside pipeline grading stands on nothing but itself. Every import counts, including the ones
deferred into functions."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("pipeline", "coldstart", "rl")

# importer prefix -> module prefixes it must never import
FORBIDDEN = {
    "pipeline": ("coldstart", "rl"),
    "coldstart": ("rl",),
    "rl": ("coldstart",),
    "rl.sft": ("rl.ptst",),
    "rl.ptst": ("rl.sft",),
    "rl.rewards": ("rl.sft", "rl.ptst"),
    "pipeline.grading": (
        "pipeline.data",
        "pipeline.models",
        "pipeline.generation",
        "pipeline.cli",
        "pipeline.config",
        "pipeline.rundir",
    ),
    "pipeline.data": ("pipeline.models", "pipeline.generation", "pipeline.cli", "pipeline.rundir"),
    "pipeline.models": ("pipeline.data", "pipeline.grading", "pipeline.generation", "pipeline.cli"),
    "pipeline.generation": ("pipeline.cli", "pipeline.rundir"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_imports_flow_one_way():
    files = [p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 40
    offences = []
    for path in files:
        importer = module_name(path)
        for imported in imports_of(path):
            for prefix, banned in FORBIDDEN.items():
                if within(importer, prefix):
                    offences += [f"{importer} imports {imported}" for b in banned if within(imported, b)]
    assert not offences, "\n".join(sorted(offences))


@pytest.mark.parametrize(
    "importer,imported", [("pipeline.cli", "coldstart.inspect"), ("rl.ptst.trl_engine", "rl.sft.modes")]
)
def test_the_rule_catches_the_old_arrows(importer, imported):
    # the two arrows the redesign removed would be reported
    assert any(within(importer, p) and any(within(imported, b) for b in banned) for p, banned in FORBIDDEN.items())


def test_the_old_model_loader_path_still_works_with_a_warning(tiny_models):
    from pipeline.models import load

    with pytest.warns(DeprecationWarning, match="pipeline.models.load.load_model_and_processor"):
        from pipeline.models import load_model_and_processor
    assert load_model_and_processor is load.load_model_and_processor
