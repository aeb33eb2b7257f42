# mmgrounding: `make demo` runs the main job, `make test` runs the tests.
# Both install first when needed (tools/install.sh: .venv, pinned stack,
# mmcv 2.1.0 compiled with ops). A second `make install` is a no-op.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast data clean web

install: $(STAMP)

$(STAMP): setup.py tools/install.sh $(wildcard requirements/*.txt)
	bash tools/install.sh
	@touch $(STAMP)

data: install
	$(PY) tools/dataset_converters/make_synthetic.py --out data/synthetic --seed 0 --preview 4

# MODEL=all (default) | glamm | llava_g
MODEL ?= all
demo: install
	MODEL=$(MODEL) bash tools/demo.sh

# Web demo on http://localhost:$(WEB_PORT) with the checkpoint `make demo`
# wrote (work_dirs/glamm_tiny_demo/last_checkpoint); WEB_ARGS adds options,
# e.g. WEB_ARGS="--config CFG --checkpoint CKPT".
WEB_PORT ?= 7860
web: install
	$(PY) demo/web_demo.py --host 127.0.0.1 --port $(WEB_PORT) $(WEB_ARGS)

test: install
	$(PY) -m pytest tests -p no:cacheprovider -q -rs --durations=15

test-fast: install
	$(PY) -m pytest tests -p no:cacheprovider -q -m "not slow"

clean:
	rm -rf work_dirs data/synthetic
