# evalsuite: every target sets itself up (virtualenv + install) on a machine with only Python and make.
#
# TORCH selects the PyTorch that is installed before everything else (README: "Which torch"):
#   the default, torch==2.13.0, is the version the reference outputs were made with; where a local CPU
#   wheel is provided (our CI) pip takes it, elsewhere pip takes PyPI's build (CUDA on Linux).
#   GPU machines: e.g. make eval TORCH=torch MODEL=...; CPU-only machines elsewhere:
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# Optional extras installed with the package (comma-separated): ray and merge always (tests use them); vllm on
# GPU machines.
EXTRAS ?=
comma := ,
INSTALL_EXTRAS := dev,ray,merge$(if $(strip $(EXTRAS)),$(comma)$(EXTRAS))
BIN := $(VENV)/bin
STAMP = $(VENV)/.installed-$(subst $(comma),-,$(INSTALL_EXTRAS))

MODEL ?=
DATA_DIR ?=
OUTPUT_DIR ?=
BENCHMARKS ?=
LIMIT ?=
DTYPE ?=
DEVICE ?=
BATCH_SIZE ?=
BACKEND ?=
DATA_PARALLEL ?=
GPUS_PER_REPLICA ?=
RAY_ADDRESS ?=
REVISION ?=
ARGS ?=
RESUME ?=
RUN ?=
CARD ?=
RUNS ?=
RECIPE ?=
GATE_MODES ?=

# Offline by default for tests and the embedded demo: a stray Hub call fails fast instead of hanging.
OFFLINE_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

opt = $(if $(2),$(1) $(2))
EVAL_ARGS = $(call opt,--data-dir,$(DATA_DIR)) $(call opt,--output-dir,$(OUTPUT_DIR)) \
	$(call opt,--benchmarks,$(BENCHMARKS)) $(call opt,--limit,$(LIMIT)) $(call opt,--dtype,$(DTYPE)) \
	$(call opt,--device,$(DEVICE)) $(call opt,--batch-size,$(BATCH_SIZE)) $(call opt,--revision,$(REVISION)) \
	$(call opt,--backend,$(BACKEND)) $(call opt,--data-parallel,$(DATA_PARALLEL)) \
	$(call opt,--gpus-per-replica,$(GPUS_PER_REPLICA)) $(call opt,--ray-address,$(RAY_ADDRESS)) \
	$(if $(filter 1 yes true,$(RESUME)),--resume) $(ARGS)

.PHONY: help install eval test quality style card compare merge clean

help:
	@echo "make eval [MODEL=<hub id or dir>] [DATA_DIR=dir] [BENCHMARKS=arc,mmlu] [LIMIT=n] [TORCH=torch] [RESUME=1]"
	@echo "make install   (the virtualenv .venv; every target runs it when needed)"
	@echo "make test | make quality | make style | make clean"
	@echo "make card RUN=<run dir> [CARD=<README.md to update>]"
	@echo "make compare RUNS=\"<run dir> <run dir> ...\""
	@echo "make merge RECIPE=<mergekit-moe recipe.yml> [GATE_MODES=hidden,cheap_embed,random] [BENCHMARKS=...] [LIMIT=n]"

# torch comes first, through pip (which finds a local CPU wheel where one is provided); the rest
# through uv, which resolves and installs in seconds where pip takes minutes, keeping that torch.
# If uv is unavailable, pip does it all.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	($(PIP) uv && $(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[$(INSTALL_EXTRAS)]") || $(PIP) -e ".[$(INSTALL_EXTRAS)]"
	touch $@

install: $(STAMP)

# Without MODEL: the embedded smoke run (tiny random MoE on synthetic data, offline, under 2 minutes on CPU).
eval: $(STAMP)
ifeq ($(strip $(MODEL)),)
	$(OFFLINE_ENV) $(BIN)/evalsuite run --demo $(EVAL_ARGS)
else
	$(BIN)/evalsuite run --model "$(MODEL)" $(EVAL_ARGS)
endif

test: $(STAMP)
	$(OFFLINE_ENV) MPLBACKEND=Agg $(BIN)/python -m pytest -q $(ARGS)

quality: $(STAMP)
	$(BIN)/ruff check evalsuite tasks tests bench examples
	$(BIN)/ruff format --check evalsuite tasks tests bench examples
	$(BIN)/mypy

style: $(STAMP)
	$(BIN)/ruff check --fix evalsuite tasks tests bench examples
	$(BIN)/ruff format evalsuite tasks tests bench examples

card: $(STAMP)
	@test -n "$(RUN)" || { echo "error: RUN is not set; give a run directory, e.g. make card RUN=results/<model>/<timestamp>"; exit 2; }
	$(BIN)/evalsuite card $(RUN) $(if $(CARD),--update "$(CARD)") $(ARGS)

compare: $(STAMP)
	@test -n "$(RUNS)" || { echo "error: RUNS is not set; give run directories, e.g. make compare RUNS=\"results/a/1 results/b/2\""; exit 2; }
	MPLBACKEND=Agg $(BIN)/evalsuite compare $(RUNS) --write $(ARGS)

# The example recipe names tiny local experts: they are built first, and it is evaluated offline on the
# sample data shipped with evalsuite (every gate mode unless GATE_MODES says otherwise).
MERGE_EXAMPLE := $(filter examples/merge/%,$(RECIPE))
ALL_GATE_MODES := hidden,cheap_embed,random
EXAMPLE_EXPERTS := examples/merge/models/.built

$(EXAMPLE_EXPERTS): examples/merge/build_experts.py $(STAMP)
	$(BIN)/python examples/merge/build_experts.py
	touch $@

merge: $(STAMP) $(if $(MERGE_EXAMPLE),$(EXAMPLE_EXPERTS))
	@test -n "$(RECIPE)" || { echo "error: RECIPE is not set; give a mergekit-moe recipe, e.g. make merge RECIPE=examples/merge/tiny-moe.yml"; exit 2; }
	$(if $(MERGE_EXAMPLE),$(OFFLINE_ENV)) MPLBACKEND=Agg $(BIN)/evalsuite merge "$(RECIPE)" \
		$(call opt,--gate-modes,$(or $(GATE_MODES),$(if $(MERGE_EXAMPLE),$(ALL_GATE_MODES)))) \
		$(if $(MERGE_EXAMPLE),$(if $(DATA_DIR),,--sample-data)) $(EVAL_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
