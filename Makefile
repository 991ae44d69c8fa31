# The two commands of the README. Each creates .venv when it is missing (or older than pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench model package clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/covidgui gui

# The suite on TEST_WORKERS processes (pytest-xdist); a module's tests stay in one process, so its
# module-scoped fixtures (trained stand-in models) are made once. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(BIN)/.installed-dev
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

bench: $(BIN)/.installed-dev
	$(BIN)/python benchmarks/startup.py

# Retrain the bundled model from ../shared/data (the command its model card records).
model: $(BIN)/.installed
	$(BIN)/python scripts/train_bundled_model.py

# The one-folder bundle dist/CovidGUI/ (build.spec), then its self-test. The same steps run on
# Windows and macOS in .github/workflows/release.yml.
BUNDLE_EXE ?= dist/CovidGUI/CovidGUI
package: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[package]'
	$(BIN)/pyinstaller --noconfirm build.spec
	QT_QPA_PLATFORM=offscreen $(BUNDLE_EXE) --self-test

clean:
	rm -rf $(VENV) build dist .pytest_cache
