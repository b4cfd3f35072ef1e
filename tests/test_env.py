"""A CUDA-only torchvision/torchcodec that cannot import is caught before any model code runs, with the fix."""

import os
import subprocess
import sys


def test_broken_torchvision_fails_fast_with_the_fix(tmp_path):
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('libcudart.so.13: cannot open shared object file')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", "import pipeline.models.load"], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "torchvision is installed but cannot be imported" in out.stderr
    assert "pip uninstall -y torchvision" in out.stderr and "libcudart" in out.stderr


def test_clean_environment_passes():
    out = subprocess.run([sys.executable, "-m", "pipeline.env"], capture_output=True, text=True)
    assert out.returncode == 0 and "environment ok" in out.stdout
