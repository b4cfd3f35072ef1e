# vr1 — every target sets up .venv itself (pinned torch via constraints.txt), then calls the `vr1` CLI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEMO   := data/demo
TINY   := models/tiny
NAME   ?=
CONFIG ?=
RUN    ?=
STAGE  ?=
ARGS   ?=

.PHONY: install install-gpu gpu-smoke doctor demo-eval lint test bench demo demo-data tiny-models check-data coldstart sft ptst eval inspect clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pipeline.env --fix
	rm -f $(VENV)/.installed-* && touch $@

# GPU nodes (verl + vLLM): the set in constraints-gpu.txt, resolved together by pip (README, "GPU clusters").
# flash-attn ships no wheel on PyPI: it builds against the installed CUDA torch, hence --no-build-isolation.
install-gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools
	$(BIN)/pip install -c constraints-gpu.txt -e '.[gpu,dev]'
	$(BIN)/pip install -c constraints-gpu.txt wheel ninja psutil
	$(BIN)/pip install -c constraints-gpu.txt --no-build-isolation flash-attn==2.8.3.post2
	$(BIN)/vr1 doctor

doctor:
	$(BIN)/vr1 doctor

# Every PTST stage on verl for two steps with a small Qwen2.5-VL and vLLM rollouts (a CUDA machine; not in CI).
gpu-smoke:
	VR1_NO_PROGRESS=1 $(BIN)/python tests/gpu_smoke.py $(ARGS)

# `ruff format` is the style (line length in pyproject.toml); lint fails on any file it would change.
lint: $(STAMP)
	$(BIN)/ruff check pipeline coldstart rl tests benchmarks scripts
	$(BIN)/ruff format --check pipeline coldstart rl tests benchmarks scripts

# The inspector's browser test drives Debian's chromium through its chromedriver (no browser download).
BROWSER := $(VENV)/.browser
$(BROWSER): | $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	touch $@

test: lint $(BROWSER)
	VR1_NO_PROGRESS=1 $(BIN)/python -m pytest -q tests

bench: $(STAMP)
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_rewards --n 10000 --workers 2
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_grading
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_coldstart --n 800 --latency 0.05 --cap 8 --samples 120
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_sft --batches 6 --batch-size 8
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_inspect --n 200000
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_ptst --seeds 0 1 2

demo: $(STAMP) demo-data tiny-models check-data coldstart inspect sft ptst demo-eval

demo-data: $(STAMP)
	$(BIN)/vr1 demo-data --out $(DEMO) --n 2000 --n-test 200 --seed 0

tiny-models: $(STAMP)
	$(BIN)/vr1 tiny-model --family all --out $(TINY) --overwrite

check-data: $(STAMP)
	$(BIN)/vr1 check-data $(DEMO)/manifest_train.yaml $(DEMO)/manifest_test.yaml

$(DEMO)/manifest_train.yaml: | $(STAMP)
	$(BIN)/vr1 demo-data --out $(DEMO) --n 2000 --n-test 200 --seed 0

$(TINY)/qwen2_5_vl/config.json: | $(STAMP)
	$(BIN)/vr1 tiny-model --family all --out $(TINY) --overwrite

coldstart: $(STAMP) $(DEMO)/manifest_train.yaml $(TINY)/qwen2_5_vl/config.json
	$(BIN)/vr1 coldstart $(if $(CONFIG),--config $(CONFIG)) $(if $(NAME),--name $(NAME)) $(ARGS)

runs/coldstart/latest:
	$(MAKE) coldstart

sft: $(STAMP) runs/coldstart/latest
	$(BIN)/vr1 sft $(if $(CONFIG),--config $(CONFIG)) $(if $(NAME),--name $(NAME)) $(ARGS)

inspect: $(STAMP) runs/coldstart/latest
	$(BIN)/vr1 inspect $(RUN) $(ARGS)

eval: $(STAMP)
	$(BIN)/vr1 eval --config $(or $(CONFIG),eval/demo) $(if $(NAME),--name $(NAME)) $(ARGS)

# The end of `make demo`: the base, SFT and PTST tiny models on the demo test split, then one table.
demo-eval: $(STAMP)
	$(BIN)/vr1 eval --config eval/demo --name demo-base model.model=$(TINY)/qwen2_5_vl
	$(BIN)/vr1 eval --config eval/demo --name demo-sft model.model=runs/sft/latest/final
	$(BIN)/vr1 eval --config eval/demo --name demo-ptst model.model=runs/ptst/latest/stage_2/final
	$(BIN)/vr1 eval --compare demo-base demo-sft demo-ptst

runs/sft/latest:
	$(MAKE) sft

ptst: $(STAMP) runs/sft/latest
	$(BIN)/vr1 ptst $(if $(CONFIG),--config $(CONFIG)) $(if $(NAME),--name $(NAME)) $(if $(STAGE),stage=$(STAGE)) $(ARGS)

clean:
	rm -rf runs $(DEMO) $(TINY)
