# balancedet: `make demo` trains + evaluates on the demo dataset; `make test` runs the tests.
# Both create the virtual environment (.venv) on first use.
PY := .venv/bin/python
CONFIG ?= configs/faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py
WORK_DIR ?= work_dirs/demo
export OMP_NUM_THREADS ?= 2

.PHONY: env data demo test lint

env:
	@bash tools/setup_env.sh

data: env
	@test -f data/demo/annotations/val.json || $(PY) tools/misc/make_demo_dataset.py --out-dir data/demo

demo: data
	$(PY) tools/train.py $(CONFIG) --work-dir $(WORK_DIR)
	$(PY) tools/test.py $(CONFIG) $(WORK_DIR)/epoch_8.pth --work-dir $(WORK_DIR)/test

test: env
	$(PY) -m pytest -q

lint: env
	$(PY) -m ruff check .
