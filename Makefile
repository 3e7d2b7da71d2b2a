# Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo blind-demo clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Two pytest workers (pytest-xdist), one per core; `make test WORKERS=0` runs in one process.
# Work stealing: a worker that finishes its share takes tests from the other's queue.
# The 20 slowest tests are listed at the end, to keep the suite within its 10 minutes.
WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) $(if $(filter 0,$(WORKERS)),,--dist worksteal) \
	    --durations=20

# A small SRResNet (4 blocks, 32 filters, no BatchNorm) trained x2 on the colour photographs
# embedded in scikit-image, then test.py on the three held-out photographs (model vs bicubic,
# per image); fails unless the model beats bicubic on every one. Report: runs/demo/report.json.
# `make demo PRECISION=bf16 DEMO=runs/demo-bf16` trains and tests the same in bfloat16.
DEMO ?= runs/demo
PRECISION ?= fp32
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/python train.py srresnet --scale 2 --param B=4 --param filters=32 \
	    --param batchnorm=false --steps 2000 --batch-size 16 --patch-size 64 --lr 2e-3 \
	    --val-every 250 --precision $(PRECISION) --out $(DEMO)
	$(BIN)/python -m visionfw.data.embedded $(DEMO)/embedded-held-out > /dev/null
	$(BIN)/python test.py --weights $(DEMO)/best.weights.h5 --dataset $(DEMO)/embedded-held-out \
	    --per-image --precision $(PRECISION) --quiet --json $(DEMO)/report.json
	$(BIN)/python -c "import json, sys; rows = json.load(open('$(DEMO)/report.json'))['results'][0]['images']; \
	    worse = [r['name'] for r in rows if r['psnr'] <= r['bicubic_psnr']]; \
	    sys.exit('the model does not beat bicubic on: ' + ', '.join(worse) if worse else 0)"

# Blind SR of real LR photographs (no ground truth) with the zoo's IKC networks (x4): SR
# image, estimated kernel and every correction step with its kernel in runs/blind-demo.
SHARED ?= ../shared/data
IKC := --weights sftmd=zoo/sftmd_nb8_nf32_x4.weights.h5 \
       --weights predictor=zoo/ikc_predictor_nf32_x4.weights.h5 \
       --weights corrector=zoo/ikc_corrector_nf32_x4.weights.h5
blind-demo: $(STAMP)
	$(BIN)/python -m visionfw sr $(SHARED)/real_lr/chip/chip.png $(SHARED)/real_lr/SRMD_real/cat.png \
	    --method ikc $(IKC) --iterations 7 --out runs/blind-demo --save-steps runs/blind-demo/steps

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
