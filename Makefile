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

.PHONY: install install-gpu gpu-smoke doctor demo-eval demo-ptst demo-report teacher lint test bench demo demo-data tiny-models check-data coldstart sft ptst eval inspect clean

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
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_rewards --distinct 2400 --workers 2 --repeats 3 --peer-n 800
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_grading
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_coldstart --n 800 --latency 0.05 --cap 8 --samples 120
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_sft --batches 6 --batch-size 8
	VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_inspect --n 200000
	OMP_NUM_THREADS=1 VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_ptst --seeds 0 1 2 3 4
	OMP_NUM_THREADS=1 VR1_NO_PROGRESS=1 $(BIN)/python -m benchmarks.bench_perception --seeds 0 1 2 --jobs 2 --control

# The tiny models run fastest on one thread each; on a busy machine two threads mostly spin (16x the CPU per step).
demo: export OMP_NUM_THREADS = 1
demo: $(STAMP) demo-data tiny-models check-data teacher coldstart inspect sft demo-ptst demo-eval demo-report

# The demo's reasoning task (README, "The demo's design"): four splits that share no item.
REASON := $(DEMO)/reasoning
REASON_SPLITS := teacher=1000,cold=64,rl=800,test=200

demo-data: $(STAMP)
	$(BIN)/vr1 demo-data --out $(DEMO) --n 2000 --n-test 200 --seed 0
	$(BIN)/vr1 demo-data --out $(REASON) --tasks colour --splits $(REASON_SPLITS) --seed 0

$(REASON)/manifest_cold.yaml: | $(STAMP)
	$(BIN)/vr1 demo-data --out $(REASON) --tasks colour --splits $(REASON_SPLITS) --seed 0

# The demo's teacher: a tiny VLM trained on the teacher split to answer the cold start's three requests.
teacher: $(STAMP) $(REASON)/manifest_cold.yaml $(TINY)/qwen2_5_vl/config.json
	$(BIN)/python -m coldstart.demo_teacher --manifest $(REASON)/manifest_teacher.yaml --out $(REASON)/teacher_sft
	$(BIN)/vr1 sft --config sft/demo_teacher --name demo-teacher

runs/sft/demo-teacher/final/config.json:
	$(MAKE) teacher

tiny-models: $(STAMP)
	$(BIN)/vr1 tiny-model --family all --out $(TINY) --overwrite

check-data: $(STAMP)
	$(BIN)/vr1 check-data $(DEMO)/manifest_train.yaml $(DEMO)/manifest_test.yaml \
	  $(REASON)/manifest_teacher.yaml $(REASON)/manifest_cold.yaml $(REASON)/manifest_rl.yaml $(REASON)/manifest_test.yaml

$(DEMO)/manifest_train.yaml: | $(STAMP)
	$(BIN)/vr1 demo-data --out $(DEMO) --n 2000 --n-test 200 --seed 0

$(TINY)/qwen2_5_vl/config.json: | $(STAMP)
	$(BIN)/vr1 tiny-model --family all --out $(TINY) --overwrite

coldstart: $(STAMP) $(REASON)/manifest_cold.yaml runs/sft/demo-teacher/final/config.json
	$(BIN)/vr1 coldstart $(if $(CONFIG),--config $(CONFIG)) $(if $(NAME),--name $(NAME)) $(ARGS)

runs/coldstart/latest:
	$(MAKE) coldstart

sft: $(STAMP) runs/coldstart/latest
	$(BIN)/vr1 sft $(if $(CONFIG),--config $(CONFIG)) $(if $(NAME),--name $(NAME)) $(ARGS)

inspect: $(STAMP) runs/coldstart/latest
	$(BIN)/vr1 inspect $(RUN) $(ARGS)

eval: $(STAMP)
	$(BIN)/vr1 eval --config $(or $(CONFIG),eval/demo) $(if $(NAME),--name $(NAME)) $(ARGS)

# `make demo`'s PTST gets a run of its own each time: under the config's name a rerun would skip the stages a
# previous demo completed (from an older SFT model) instead of training the new one.
demo-ptst: $(STAMP) runs/sft/latest
	$(BIN)/vr1 ptst --name demo-$$(date +%Y%m%d-%H%M%S) $(ARGS)

# The end of `make demo`: the base, SFT and PTST tiny models on the demo test split, then one table.
demo-eval: $(STAMP)
	$(BIN)/vr1 eval --config eval/demo --name demo-base model.model=$(TINY)/qwen2_5_vl
	$(BIN)/vr1 eval --config eval/demo --name demo-sft model.model=runs/sft/latest/final
	$(BIN)/vr1 eval --config eval/demo --name demo-ptst model.model=runs/ptst/latest/stage_2/final
	$(BIN)/vr1 eval --compare demo-base demo-sft demo-ptst

# The last step of `make demo`: runs/demo/report.md (results table, cold-start counts, PTST curves as a PNG).
demo-report: $(STAMP)
	$(BIN)/python -m rl.report --ptst runs/ptst/latest --out runs/demo

runs/sft/latest:
	$(MAKE) sft

# The perception tasks (VLM-R1, Visual-RFT) on the demo images: REC, OVD, detection, classification, reasoning
# grounding, each from the demo set's object annotations. `make rec` runs ptst/demo_rec on CPU in about a minute;
# `make rec CONFIG=ptst/rec_vlm_r1` the published recipe (verl on GPUs). `make perception-demo` runs all five.
PERCEPTION := $(DEMO)/perception
PERCEPTION_TASKS := rec ovd detection classification grounding
.PHONY: perception-data perception-demo $(PERCEPTION_TASKS)
perception-data: $(STAMP) $(DEMO)/manifest_train.yaml
	$(BIN)/vr1 perception-data --demo $(DEMO) --out $(PERCEPTION)

$(PERCEPTION)/manifest_rec_train.yaml: | $(STAMP) $(DEMO)/manifest_train.yaml
	$(BIN)/vr1 perception-data --demo $(DEMO) --out $(PERCEPTION)

$(PERCEPTION_TASKS): $(STAMP) $(if $(CONFIG),,$(PERCEPTION)/manifest_rec_train.yaml $(TINY)/qwen2_5_vl/config.json)
	$(BIN)/vr1 ptst --config $(or $(CONFIG),ptst/demo_$@) $(if $(NAME),--name $(NAME)) $(ARGS)

perception-demo: $(PERCEPTION_TASKS)

ptst: $(STAMP) runs/sft/latest
	$(BIN)/vr1 ptst $(if $(CONFIG),--config $(CONFIG)) $(if $(NAME),--name $(NAME)) $(if $(STAGE),stage=$(STAGE)) $(ARGS)

clean:
	rm -rf runs $(DEMO) $(TINY)
