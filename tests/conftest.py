import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("VR1_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures(tmp_path) -> Path:
    """A private copy of tests/fixtures (readers may extract images beside the data)."""
    dst = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, dst)
    return dst


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from pipeline.data.demo_data import generate_demo_data

    out = tmp_path_factory.mktemp("demo")
    generate_demo_data(out, n_train=40, n_test=10, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from pipeline.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {fam: build_tiny_model(fam, root / fam, seed=0) for fam in ("qwen2_vl", "qwen2_5_vl", "internvl")}


def make_image(path: Path, colour="red", size=(40, 30), fmt=None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path
