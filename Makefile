# One-command entry points. Each creates the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo notebooks test test-quick bench clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	# imgaug 0.4.0 asks for opencv-python, which would clash with the headless
	# OpenCV already installed: install it without its dependencies (they are
	# all in requirements.txt).
	$(BIN)/pip install --quiet --no-deps imgaug==0.4.0
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python samples/shapes/shapes.py demo --out demo_output

# JupyterLab on notebooks/. The tests do not need it, so it is installed on first use here,
# within the versions of requirements.txt. JUPYTER_ARGS: more options (e.g. --allow-root,
# --no-browser --port 8888).
notebooks: $(STAMP)
	$(BIN)/python -c "import jupyterlab" 2>/dev/null || \
		$(BIN)/pip install --quiet -c requirements.txt "jupyterlab>=4,<5"
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(JUPYTER_ARGS)

# The export tests' optional runtimes (ONNX, LiteRT), pinned in requirements-test.txt.
TEST_STAMP := $(VENV)/.installed-test

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/pip install --quiet -r requirements-test.txt -c requirements.txt
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -ra

test-quick: $(TEST_STAMP)
	$(BIN)/python -m pytest -ra -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/bench_detect.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
