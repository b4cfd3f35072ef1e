"""Generate LLaMA-Factory supervised-encoding fixtures for vr1 (issue 14).

Vision-R1's cold-start SFT ran on LLaMA-Factory (template ``qwen2_vl``, cutoff_len 16384, full fine-tuning).
This script runs LLaMA-Factory's OWN data path on a set of Vision-R1-cold style records and writes what it
produced, so that vr1's encoder can be compared with it token for token.

Two halves, one file:

* the outer half (stdlib only; run it with any Python 3.11) writes the records, builds the tiny Qwen2.5-VL with
  ``vr1 tiny-model``, creates a throwaway venv, pip-installs ``llamafactory`` from PyPI into it, checks that the
  tokenizer gives the same ids in vr1's venv and in that venv, and then re-runs this file inside the venv;
* the inner half (``--inner``, run by the throwaway venv's Python) imports LLaMA-Factory and goes through the
  same calls as ``llamafactory-cli train`` with ``stage: sft`` (``get_train_args`` -> ``load_tokenizer`` ->
  ``get_template_and_fix_tokenizer`` -> ``get_dataset``), with a ``dataset_info.json`` pointing at the records,
  so the ShareGPT converter, the ``qwen2_vl`` template, the Qwen2-VL mm_plugin and the supervised processor are
  LLaMA-Factory's. It writes ``expected.json``.

Usage (from the repo root)::

    python3 scripts/llamafactory_fixtures.py            # full run: venv, install, fixtures
    python3 scripts/llamafactory_fixtures.py --env /tmp/other_env --skip-install

Nothing is installed into the project venv; it is only used to run ``vr1 tiny-model`` and the tokenizer check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures" / "llamafactory"
PROJECT_PY = REPO / ".venv" / "bin" / "python"
PROJECT_VR1 = REPO / ".venv" / "bin" / "vr1"

LF_VERSION = "0.9.5"
# llamafactory 0.9.5 asks for torch>=2.4.0, torchvision>=0.19.0, torchaudio>=2.4.0 and imports torchaudio at the
# top of data/mm_plugin.py. The CPU torch wheel on this machine (2.13.0+cpu) has no matching torchaudio on PyPI
# (torchaudio's extension needs libc10_cuda), so the trio comes from PyPI at one consistent release.
TORCH_PINS = ["torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1"]

TEMPLATE = "qwen2_vl"
MAIN_CUTOFF = 16384  # Vision-R1's cold-start cutoff_len
SHORT_CUTOFF = 64
# Qwen2.5-VL-7B-Instruct's own preprocessor budget (min_pixels 4*28*28, max_pixels 16384*28*28); used for one
# extra setting on a converted copy of the tiny model, because the tiny model's own budget (224*224) hides
# LLaMA-Factory's 768*768 cap.
QWEN25VL_MIN_PIXELS = 3136
QWEN25VL_MAX_PIXELS = 12845056

IMAGE_SIZES = {  # file name -> (width, height)
    "img_64x48.png": (64, 48),
    "img_300x200.png": (300, 200),
    "img_1000x700.png": (1000, 700),
    "img_1920x1080.png": (1920, 1080),
    "img_20x10.png": (20, 10),
    "img_450x640.png": (450, 640),
}

THINK_B = "<think>\nlet me see\n</think>\n\nFinal Answer:B"
THINK_C = "<think>The figure shows three equal sides, so it is a triangle.</think><answer> Final Answer:C </answer>"

# (case name, record). llava_cot layout: id / image (string) / conversations human|gpt.
LLAVA_COT = [
    (
        "lc_image_first",
        {
            "id": "lc-001",
            "image": "images/img_300x200.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat animal is shown?\nOptions:\nA. cat\nB. dog"},
                {"from": "gpt", "value": THINK_B},
            ],
        },
    ),
    (
        "lc_image_after_question",
        {
            "id": "lc-002",
            "image": "images/img_1000x700.png",
            "conversations": [
                {"from": "human", "value": "Which shape is drawn? Answer with the option's letter.\n<image>"},
                {"from": "gpt", "value": THINK_C},
            ],
        },
    ),
    (
        "lc_image_mid_text",
        {
            "id": "lc-003",
            "image": "images/img_64x48.png",
            "conversations": [
                {"from": "human", "value": "Look at the figure below.\n<image>\nHow many sides does it have?"},
                {"from": "gpt", "value": "<think>\ncount them: 1, 2, 3\n</think>\n\nFinal Answer:3."},
            ],
        },
    ),
    (
        "lc_whitespace_verbatim",
        {
            "id": "lc-004",
            "image": "images/img_1920x1080.png",
            "conversations": [
                {"from": "human", "value": "  <image>\n  What is the largest number?  \n"},
                {"from": "gpt", "value": "\n  <think>\n  scan the chart \n</think>\n\nFinal Answer:option B  \n"},
            ],
        },
    ),
    (
        "lc_system_turn",
        {
            "id": "lc-005",
            "image": "images/img_20x10.png",
            "conversations": [
                {"from": "system", "value": "You are a careful visual reasoner."},
                {"from": "human", "value": "<image>\nIs the bar red?"},
                {"from": "gpt", "value": "<think>\nit looks red\n</think>\n\nFinal Answer:yes"},
            ],
        },
    ),
    (
        "lc_small_image",
        {
            "id": "lc-007",
            "image": "images/img_20x10.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat color is the tiny bar?"},
                {"from": "gpt", "value": "<think>\nit is red\n</think>\n\nFinal Answer:red"},
            ],
        },
    ),
    (
        "lc_multiturn",
        {
            "id": "lc-006",
            "image": "images/img_450x640.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is the value of x?"},
                {"from": "gpt", "value": "<think>\n2x = 8\n</think>\n\nFinal Answer:4"},
                {"from": "human", "value": "And the value of 3x?"},
                {"from": "gpt", "value": "<think>\n3 * 4 = 12\n</think>\n\nFinal Answer:12."},
            ],
        },
    ),
]

# mulberry layout: images (list) / conversations user|assistant, no id.
MULBERRY = [
    (
        "mb_image_first",
        {
            "images": ["images/img_300x200.png"],
            "conversations": [
                {"from": "user", "value": "<image>\nWhat is the color of the square?"},
                {"from": "assistant", "value": THINK_B},
            ],
        },
    ),
    (
        "mb_two_images",
        {
            "images": ["images/img_64x48.png", "images/img_1000x700.png"],
            "conversations": [
                {"from": "user", "value": "Image 1: <image>\nImage 2: <image>\nWhich image is wider?"},
                {"from": "assistant", "value": THINK_C},
            ],
        },
    ),
    (
        "mb_image_after_question",
        {
            "images": ["images/img_1920x1080.png"],
            "conversations": [
                {"from": "user", "value": "Find the area of the triangle. Choose the right option.\n<image>"},
                {"from": "assistant", "value": "<think>\nbase 6, height 4, area 12\n</think>\n\nFinal Answer:12."},
            ],
        },
    ),
    (
        "mb_system_turn",
        {
            "images": ["images/img_450x640.png"],
            "conversations": [
                {"from": "system", "value": "Answer in one word."},
                {"from": "user", "value": "<image>What is it?"},
                {"from": "assistant", "value": THINK_C},
            ],
        },
    ),
    (
        "mb_multiturn",
        {
            "images": ["images/img_300x200.png"],
            "conversations": [
                {"from": "user", "value": "<image>\nHow many circles are there?"},
                {"from": "assistant", "value": "<think>\nI count two\n</think>\n\nFinal Answer:2"},
                {"from": "user", "value": "And squares?"},
                {"from": "assistant", "value": "<think>\nnone\n</think><answer> Final Answer:0 </answer>"},
            ],
        },
    ),
]

_LONG_STEPS = " ".join(
    f"Step {i}: the side {i} measures {i * 3} units, so the running total is {i * i}." for i in range(1, 25)
)
LONG = [
    (
        "long_response",
        {
            "id": "long-001",
            "image": "images/img_64x48.png",
            "conversations": [
                {"from": "human", "value": "<image>\nAdd up the sides of the polygon."},
                {"from": "gpt", "value": f"<think>\n{_LONG_STEPS}\n</think>\n\nFinal Answer:B"},
            ],
        },
    ),
]

DATASETS = {  # dataset name -> (layout, file, records, dataset_info entry)
    "vr1_llava_cot": (
        "llava_cot",
        "llava_cot.json",
        LLAVA_COT,
        {
            "file_name": "llava_cot.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "image"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        },
    ),
    "vr1_mulberry": (
        "mulberry",
        "mulberry.json",
        MULBERRY,
        {
            "file_name": "mulberry.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"},
        },
    ),
    # same file as vr1_mulberry, but dataset_info also names system_tag: the published Vision-R1-cold entries
    # name only role/content/user/assistant tags, and LLaMA-Factory then sets system_tag to None (parser.py).
    "vr1_mulberry_systag": (
        "mulberry",
        "mulberry.json",
        MULBERRY,
        {
            "file_name": "mulberry.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        },
    ),
    "vr1_long": (
        "llava_cot",
        "long.json",
        LONG,
        {
            "file_name": "long.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "image"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        },
    ),
}

TOKENIZER_CHECK_STRINGS = [
    "Hello world",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
    "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>\nWhat animal is shown?",
    THINK_B + "<|im_end|>\n",
    THINK_C,
    "  <image>\n  What is the largest number?  \n",
    "\n  <think>\n  scan the chart \n</think>\n\nFinal Answer:option B  \n",
    "Step 7: 21 units, total 49. \u00e9\u00e8 \u4f60\u597d",
]


def log(msg: str) -> None:
    print(f"[lf-fixtures] {msg}", flush=True)  # noqa: T201


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def pip_env() -> dict[str, str]:
    env = dict(os.environ)
    # This machine's global pip config caps torch (constraint file); the throwaway venv follows LLaMA-Factory's pins.
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


# --------------------------------------------------------------------------------------------------- outer half


def write_records(records_dir: Path) -> None:
    records_dir.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, (_layout, fname, recs, entry) in DATASETS.items():
        (records_dir / fname).write_text(json.dumps([r for _, r in recs], indent=2, ensure_ascii=False) + "\n")
        info[name] = entry
    (records_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
    cases = {name: [c for c, _ in recs] for name, (_l, _f, recs, _e) in DATASETS.items()}
    (records_dir / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")


def ensure_env(env_dir: Path, skip_install: bool, transformers_pin: str | None) -> Path:
    py = env_dir / "bin" / "python"
    if skip_install:
        if not py.exists():
            raise SystemExit(f"--skip-install given but {py} does not exist")
        return py
    if not py.exists():
        run([sys.executable, "-m", "venv", env_dir])
    constraints = env_dir / "lf_constraints.txt"
    constraints.write_text("\n".join(TORCH_PINS) + "\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-c", constraints]
    run([*pip, *TORCH_PINS], env=pip_env())
    extra = [f"transformers=={transformers_pin}"] if transformers_pin else []
    run([*pip, f"llamafactory=={LF_VERSION}", *extra], env=pip_env())
    return py


def lf_wheel_id(lf_py: Path, work: Path) -> dict[str, str]:
    """Identify the installed LLaMA-Factory: PyPI wheel name and sha256 (the wheel carries no git commit)."""
    dl = work / "lf_wheel"
    if dl.exists():
        shutil.rmtree(dl)
    cmd = [lf_py, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", dl]
    run([*cmd, f"llamafactory=={LF_VERSION}"], env=pip_env(), stdout=subprocess.DEVNULL)
    wheel = next(dl.glob("llamafactory-*.whl"))
    return {
        "source": "PyPI",
        "wheel": wheel.name,
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
    }


def build_tiny_model(model_arg: str | None, work: Path) -> Path:
    if model_arg:
        return Path(model_arg).resolve()
    out = Path("/tmp/lf_tiny")
    run([PROJECT_VR1, "tiny-model", "--family", "qwen2_5_vl", "--out", out, "--overwrite"])
    return out


def dir_digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(path.iterdir()) if p.is_file()}


_ENCODE_SNIPPET = r"""
import json, sys
from transformers import AutoTokenizer
import transformers
tok = AutoTokenizer.from_pretrained(sys.argv[1])
strings = json.loads(sys.argv[2])
print(json.dumps({"transformers": transformers.__version__, "class": type(tok).__name__,
                  "ids": [tok.encode(s, add_special_tokens=False) for s in strings]}))
"""


def tokenizer_check(lf_py: Path, original: Path, converted: Path) -> dict:
    """Encode the same strings with vr1's transformers (original files) and LLaMA-Factory's (files it loads)."""
    arg = json.dumps(TOKENIZER_CHECK_STRINGS)
    a = json.loads(
        subprocess.run(
            [PROJECT_PY, "-c", _ENCODE_SNIPPET, original, arg], check=True, capture_output=True, text=True
        ).stdout.splitlines()[-1]
    )
    b = json.loads(
        subprocess.run(
            [lf_py, "-c", _ENCODE_SNIPPET, converted, arg], check=True, capture_output=True, text=True
        ).stdout.splitlines()[-1]
    )
    same = a["ids"] == b["ids"]
    result = {
        "strings": TOKENIZER_CHECK_STRINGS,
        "vr1_env": {"transformers": a["transformers"], "class": a["class"]},
        "lf_env": {"transformers": b["transformers"], "class": b["class"]},
        "identical_ids": same,
        "ids": a["ids"],
    }
    log(
        f"tokenizer check: vr1 env transformers {a['transformers']} vs LLaMA-Factory env {b['transformers']}: "
        f"{'IDENTICAL' if same else 'DIFFERENT'} ids for {len(TOKENIZER_CHECK_STRINGS)} strings"
    )
    if not same:
        for s, x, y in zip(TOKENIZER_CHECK_STRINGS, a["ids"], b["ids"], strict=True):
            if x != y:
                log(f"  {s!r}: {x} != {y}")
        raise SystemExit("tokenizer ids differ between environments; refusing to write fixtures")
    return result


def lf_transformers_version(lf_py: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('transformers'))"
    return subprocess.run([lf_py, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def convert_for_transformers4(model_dir: Path) -> list[str]:
    """transformers 4.x cannot read one field that transformers 5 writes; rewrite it. Token ids are unchanged
    (tokenizer.json is untouched; checked by tokenizer_check)."""
    changes = []
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    extra = cfg.get("extra_special_tokens")
    if isinstance(extra, list):
        # 4.x expects a dict {attribute_name: token}; a 5.x list holds plain extra special tokens, which 4.x keeps
        # as additional_special_tokens.
        del cfg["extra_special_tokens"]
        if extra:
            cfg["additional_special_tokens"] = extra
        changes.append(
            f"tokenizer_config.json: 'extra_special_tokens': {extra!r} (transformers 5 list) removed"
            + (", moved to 'additional_special_tokens'" if extra else "")
            + " (transformers 4.x calls .keys() on it)"
        )
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    return changes


def prepare_models(tiny: Path, work: Path, lf_transformers: str) -> tuple[dict[str, Path], list[str]]:
    """Copies of the tiny model that LLaMA-Factory loads. Under transformers 5 the default copy is byte-identical;
    under transformers 4.x one tokenizer_config.json field is rewritten (convert_for_transformers4). The budget
    copy also changes preprocessor_config.json's size to Qwen2.5-VL-7B-Instruct's own min/max pixels."""
    models = {}
    changes: list[str] = []
    plain = work / "model_tiny"
    if plain.exists():
        shutil.rmtree(plain)
    shutil.copytree(tiny, plain)
    if int(lf_transformers.split(".")[0]) < 5:
        changes = convert_for_transformers4(plain)
    models["tiny"] = plain
    budget = work / "model_tiny_qwen25vl_budget"
    if budget.exists():
        shutil.rmtree(budget)
    shutil.copytree(plain, budget)
    cfg_path = budget / "preprocessor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["size"] = {"shortest_edge": QWEN25VL_MIN_PIXELS, "longest_edge": QWEN25VL_MAX_PIXELS}
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    models["tiny_qwen25vl_budget"] = budget
    for c in changes:
        log(f"converted copy: {c}")
    return models, changes


def outer(ns: argparse.Namespace) -> None:
    out = Path(ns.out).resolve()
    records = out / "records"
    work = Path(ns.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    write_records(records)
    lf_py = ensure_env(Path(ns.env).resolve(), ns.skip_install, ns.transformers)
    # images are drawn with PIL inside the throwaway venv (the outer half is stdlib only)
    run([lf_py, __file__, "--inner-images", "--out", out])
    tiny = build_tiny_model(ns.model, work)
    lf_transformers = lf_transformers_version(lf_py)
    models, conversions = prepare_models(tiny, work, lf_transformers)
    check = tokenizer_check(lf_py, tiny, models["tiny"])
    meta = {
        "llamafactory_wheel": lf_wheel_id(lf_py, work),
        "tiny_model_source": str(tiny),
        "tiny_model_sha256_16": dir_digest(tiny),
        "tiny_model_conversions": conversions,
        "budget_model_change": (
            f"preprocessor_config.json size -> shortest_edge {QWEN25VL_MIN_PIXELS}, longest_edge {QWEN25VL_MAX_PIXELS}"
        ),
        "tokenizer_check": check,
        "command": ns.command_line,
    }
    (work / "outer_meta.json").write_text(json.dumps(meta, indent=2))
    cmd = [lf_py, __file__, "--inner", "--out", out, "--work", work, "--model", models["tiny"]]
    cmd += ["--budget-model", models["tiny_qwen25vl_budget"], "--meta", work / "outer_meta.json"]
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(work / "hf_datasets_cache"),
            "HF_HOME": str(work / "hf_home"),
            "DISABLE_VERSION_CHECK": "0",
            "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": "",
        }
    )
    run(cmd, env=env)
    log(f"wrote {out / 'expected.json'}")


# --------------------------------------------------------------------------------------------------- inner half


def inner_images(out: Path) -> None:
    from PIL import Image, ImageDraw

    img_dir = out / "records" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in IMAGE_SIZES.items():
        img = Image.new("RGB", (w, h), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        for i in range(0, max(w, h), max(4, min(w, h) // 6)):
            draw.line([(i, 0), (0, i)], fill=((i * 7) % 256, (i * 13) % 256, (i * 29) % 256), width=2)
        draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], outline=(200, 0, 0), width=max(1, min(w, h) // 20))
        img.save(img_dir / name, format="PNG", optimize=False)


def _rel(path: str, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return path


def inner(ns: argparse.Namespace) -> None:  # runs inside the throwaway venv
    import datasets
    import llamafactory
    import PIL
    import tokenizers
    import torch
    import transformers
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from PIL import Image

    out = Path(ns.out).resolve()
    records_dir = out / "records"
    work = Path(ns.work).resolve()
    meta = json.loads(Path(ns.meta).read_text())
    versions = {
        "llamafactory": llamafactory.__version__,
        "llamafactory_source": meta["llamafactory_wheel"],
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
    }
    log(f"inner: {versions}")
    cases = json.loads((records_dir / "cases.json").read_text())
    raw = {name: json.loads((records_dir / f).read_text()) for name, (_l, f, _r, _e) in DATASETS.items()}

    def encode(dataset: str, cutoff_len: int, model_dir: str, tag: str) -> tuple[list[dict], dict]:
        args = {
            "model_name_or_path": model_dir,
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "full",
            "dataset": dataset,
            "dataset_dir": str(records_dir),
            "template": TEMPLATE,
            "cutoff_len": cutoff_len,
            "overwrite_cache": True,
            "output_dir": str(work / "out" / tag),
            "report_to": "none",
            "per_device_train_batch_size": 1,
        }
        model_args, data_args, training_args, _ft, _gen = get_train_args(args)
        tokenizer_module = load_tokenizer(model_args)
        tokenizer, processor = tokenizer_module["tokenizer"], tokenizer_module["processor"]
        if processor is None:
            raise SystemExit(f"LLaMA-Factory could not load a processor from {model_dir}")
        template = get_template_and_fix_tokenizer(tokenizer, data_args)
        module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
        train = module["train_dataset"]
        ip = processor.image_processor
        size = ip.size if isinstance(ip.size, dict) else dict(ip.size)
        settings = {
            "template": TEMPLATE,
            "cutoff_len": data_args.cutoff_len,
            "image_max_pixels": processor.image_max_pixels,
            "image_min_pixels": processor.image_min_pixels,
            "train_on_prompt": data_args.train_on_prompt,
            "mask_history": data_args.mask_history,
            "packing": data_args.packing,
            "neat_packing": data_args.neat_packing,
            "default_system_override": data_args.default_system,
            "template_default_system": template.default_system,
            "template_efficient_eos": template.efficient_eos,
            "template_replace_eos": template.replace_eos,
            "tokenizer_class": type(tokenizer).__name__,
            "eos_token": tokenizer.eos_token,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "processor_class": type(processor).__name__,
            "image_processor_class": type(ip).__name__,
            "hf_image_processor_min_pixels": size.get("shortest_edge", getattr(ip, "min_pixels", None)),
            "hf_image_processor_max_pixels": size.get("longest_edge", getattr(ip, "max_pixels", None)),
            "patch_size": ip.patch_size,
            "merge_size": ip.merge_size,
            "temporal_patch_size": ip.temporal_patch_size,
        }
        # Which records LLaMA-Factory keeps: its own converter, then the same check as supervised.py
        # preprocess_dataset (odd prompt count, one response); dropped ones leave no row in the dataset.
        attr = get_dataset_list([dataset], str(records_dir))[0]
        converter = get_dataset_converter(attr.formatting, attr, data_args)
        kept = []
        for rec in raw[dataset]:
            conv = converter(rec)
            kept.append(len(conv["_prompt"]) % 2 == 1 and len(conv["_response"]) == 1)
        image_token_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        vs_id = tokenizer.convert_tokens_to_ids("<|vision_start|>")
        ve_id = tokenizer.convert_tokens_to_ids("<|vision_end|>")
        names = cases[dataset]
        if len(train) != sum(kept):
            raise SystemExit(f"{dataset}: LLaMA-Factory kept {len(train)} records, its converter says {sum(kept)}")
        rows = []
        examples = iter(train)
        for idx, record in enumerate(raw[dataset]):
            base = {
                "case": names[idx],
                "layout": DATASETS[dataset][0],
                "dataset": dataset,
                "dataset_info": DATASETS[dataset][3],
                "record_index": idx,
                "record": record,
                "setting": tag,
                "cutoff_len": cutoff_len,
                "image_max_pixels": processor.image_max_pixels,
                "image_min_pixels": processor.image_min_pixels,
                "hf_image_processor_min_pixels": settings["hf_image_processor_min_pixels"],
                "hf_image_processor_max_pixels": settings["hf_image_processor_max_pixels"],
            }
            if not kept[idx]:
                rows.append({**base, "dropped": True, "input_ids": None, "labels": None, "versions": versions})
                continue
            example = next(examples)
            img_field = record.get("image", record.get("images"))
            img_paths = [img_field] if isinstance(img_field, str) else list(img_field or [])
            # the same paths LLaMA-Factory's converter produced (media_dir joined)
            lf_paths = list(example["images"] or [])
            if [_rel(p, records_dir) for p in lf_paths] != img_paths:
                raise SystemExit(f"{dataset}[{idx}]: image order mismatch {lf_paths} vs {img_paths}")
            images = []
            if lf_paths:
                # LLaMA-Factory's own resize (mm_plugin._regularize_images -> Qwen2VLPlugin._preprocess_image)
                # and the grid its Qwen2-VL plugin expands tokens with (_get_mm_inputs), same kwargs as it uses.
                regular = template.mm_plugin._regularize_images(
                    lf_paths,
                    image_max_pixels=processor.image_max_pixels,
                    image_min_pixels=processor.image_min_pixels,
                )["images"]
                grids = template.mm_plugin._get_mm_inputs(lf_paths, [], [], processor)["image_grid_thw"].tolist()
                for p, im, g in zip(img_paths, regular, grids, strict=True):
                    with Image.open(records_dir / p) as orig:
                        osize = list(orig.size)
                    images.append(
                        {
                            "path": p,
                            "original_size_wh": osize,
                            "lf_resized_size_wh": list(im.size),
                            "image_grid_thw": [int(v) for v in g],
                            "hf_resized_size_wh": [int(g[2]) * ip.patch_size, int(g[1]) * ip.patch_size],
                            "num_image_tokens": int(g[0] * g[1] * g[2]) // (ip.merge_size**2),
                        }
                    )
            input_ids = [int(t) for t in example["input_ids"]]
            labels = [int(t) for t in example["labels"]]
            expected_pads = sum(i["num_image_tokens"] for i in images)
            rows.append(
                {
                    **base,
                    "dropped": False,
                    "images": images,
                    "image_grid_thw": [i["image_grid_thw"] for i in images],
                    "length": len(input_ids),
                    "num_image_pad_in_input_ids": input_ids.count(image_token_id),
                    "num_image_pad_expected": expected_pads,
                    "image_tokens_cut": input_ids.count(image_token_id) != expected_pads,
                    "vision_start_count": input_ids.count(vs_id),
                    "vision_end_count": input_ids.count(ve_id),
                    "num_trained_tokens": sum(1 for t in labels if t != IGNORE_INDEX),
                    "input_ids": input_ids,
                    "labels": labels,
                    "decoded": _compact_decode(tokenizer, input_ids, image_token_id),
                    "versions": versions,
                }
            )
        return rows, settings

    all_rows: list[dict] = []
    settings_seen: dict[str, dict] = {}
    model = str(Path(ns.model).resolve())
    budget_model = str(Path(ns.budget_model).resolve())
    for dataset in DATASETS:
        if dataset == "vr1_mulberry_systag":
            rows, st = encode(dataset, MAIN_CUTOFF, model, f"tiny_cutoff{MAIN_CUTOFF}")
            all_rows += rows
            continue
        for cutoff in (MAIN_CUTOFF, SHORT_CUTOFF):
            rows, st = encode(dataset, cutoff, model, f"tiny_cutoff{cutoff}")
            all_rows += rows
            settings_seen[f"tiny_cutoff{cutoff}"] = st
        rows, st = encode(dataset, MAIN_CUTOFF, budget_model, f"qwen25vl_budget_cutoff{MAIN_CUTOFF}")
        all_rows += rows
        settings_seen[f"qwen25vl_budget_cutoff{MAIN_CUTOFF}"] = st

    # a cutoff that cuts only the response tail of the long record: infer_seqlen truncates only the target
    # when 2*target_len >= cutoff and 2*source_len < cutoff (processor_utils.infer_seqlen).
    full = next(r for r in all_rows if r["case"] == "long_response" and r["setting"] == f"tiny_cutoff{MAIN_CUTOFF}")
    source_len = full["labels"].index(next(t for t in full["labels"] if t != IGNORE_INDEX))
    target_len = full["length"] - source_len
    tail_cutoff = source_len + target_len // 2
    if not (2 * source_len < tail_cutoff <= 2 * target_len):
        raise SystemExit(f"cannot pick a tail-only cutoff: source {source_len}, target {target_len}")
    rows, st = encode("vr1_long", tail_cutoff, model, f"tiny_cutoff{tail_cutoff}_tail")
    all_rows += rows
    settings_seen[f"tiny_cutoff{tail_cutoff}_tail"] = st
    log(f"tail-only cutoff for long_response: source {source_len}, target {target_len}, cutoff_len {tail_cutoff}")

    (out / "expected.json").write_text(json.dumps(all_rows, indent=1, ensure_ascii=False) + "\n")
    gen = {
        "versions": versions,
        "settings": settings_seen,
        "tokenizer_check": meta["tokenizer_check"],
        "tiny_model_source": meta["tiny_model_source"],
        "tiny_model_sha256_16": meta["tiny_model_sha256_16"],
        "tiny_model_conversions": meta["tiny_model_conversions"],
        "budget_model_change": meta["budget_model_change"],
        "command": meta["command"],
        "num_rows": len(all_rows),
    }
    (out / "generation.json").write_text(json.dumps(gen, indent=2, ensure_ascii=False) + "\n")
    for r in all_rows:
        if r["dropped"]:
            log(f"{r['setting']:32s} {r['dataset']:20s} {r['case']:26s} DROPPED by LLaMA-Factory")
            continue
        log(
            f"{r['setting']:32s} {r['dataset']:20s} {r['case']:26s} len={r['length']:5d} "
            f"trained={r['num_trained_tokens']:4d} "
            f"pads={r['num_image_pad_in_input_ids']}/{r['num_image_pad_expected']} grids={r['image_grid_thw']} "
            f"lf_sizes={[i['lf_resized_size_wh'] for i in r['images']]}"
        )


def _compact_decode(tokenizer, ids: list[int], image_token_id: int) -> str:
    """Decoded text with each run of <|image_pad|> written once with its count, for humans reading the fixture."""
    parts: list[str] = []
    i = 0
    while i < len(ids):
        if ids[i] == image_token_id:
            j = i
            while j < len(ids) and ids[j] == image_token_id:
                j += 1
            parts.append(f"<|image_pad|>*{j - i}")
            i = j
        else:
            j = i
            while j < len(ids) and ids[j] != image_token_id:
                j += 1
            parts.append(tokenizer.decode(ids[i:j], skip_special_tokens=False))
            i = j
    return "".join(parts)


def compare(a_path: Path, b_path: Path) -> int:
    """Compare the encodings of two expected.json files (e.g. made under two transformers versions)."""
    keys = ("dropped", "input_ids", "labels", "image_grid_thw", "images")
    a = {(r["setting"], r["dataset"], r["case"]): r for r in json.loads(Path(a_path).read_text())}
    b = {(r["setting"], r["dataset"], r["case"]): r for r in json.loads(Path(b_path).read_text())}
    diffs = sorted(
        k for k in a.keys() | b.keys() if k not in a or k not in b or any(a[k].get(x) != b[k].get(x) for x in keys)
    )
    va = next(iter(a.values()))["versions"]["transformers"]
    vb = next(iter(b.values()))["versions"]["transformers"]
    log(f"compare: {len(a)} vs {len(b)} rows (transformers {va} vs {vb}); {len(diffs)} differ")
    for k in diffs:
        log(f"  differs: {k}")
    return 1 if diffs else 0


# --------------------------------------------------------------------------------------------------- entry


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="/tmp/lf_env", help="throwaway venv for LLaMA-Factory (default /tmp/lf_env)")
    ap.add_argument("--work", default="/tmp/lf_work", help="scratch folder (model copies, caches)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture folder (default tests/fixtures/llamafactory)")
    ap.add_argument("--model", default=None, help="tiny Qwen2.5-VL folder (default: build with vr1 tiny-model)")
    ap.add_argument("--skip-install", action="store_true", help="reuse --env as it is")
    ap.add_argument(
        "--transformers",
        default=None,
        help="pin transformers in the venv (default: whatever pip resolves within llamafactory's own range)",
    )
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two expected.json files and exit")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--inner-images", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--budget-model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--meta", default=None, help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    ns.command_line = "python3 scripts/llamafactory_fixtures.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if ns.compare:
        raise SystemExit(compare(Path(ns.compare[0]), Path(ns.compare[1])))
    if ns.inner_images:
        inner_images(Path(ns.out))
    elif ns.inner:
        inner(ns)
    else:
        outer(ns)


if __name__ == "__main__":
    main()
