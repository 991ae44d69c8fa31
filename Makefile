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

# Retrain the bundled model from ../shared/data into build/model/ (to compare before copying it to
# models/): the command its model card records, then its test-time view (v4.0.1 -> v4.2.0; the
# .keras is stored in float16 as v4.0.1's was). Needs EfficientNet-Lite0's ImageNet weights:
# make model LITE0_WEIGHTS=lite0-imagenet.npz (scripts/convert_lite0_weights.py writes them).
# The card's leave-one-source-out rows come from benchmarks/sources.py --json (hours): LOSO=FILE.json.
model: $(BIN)/.installed
	@test -f "$(LITE0_WEIGHTS)" || { echo "make model LITE0_WEIGHTS=PATH.npz: EfficientNet-Lite0's ImageNet weights (see scripts/convert_lite0_weights.py)"; exit 2; }
	$(BIN)/python scripts/train_bundled_model.py --architecture efficientnet-lite0 \
		--pretrained-weights "$(LITE0_WEIGHTS)" --epochs 6 --learning-rate 0.0005 --source-weights siim-covid=3 \
		--calibrate-on siim-covid --seed 0 --version 4.0.1 $(if $(LOSO),--loso $(LOSO)) --out build/model/network
	$(BIN)/python scripts/add_test_time_views.py build/model/network/covid_classifier.keras \
		--out build/model/covid_classifier.keras --version 4.2.0

# The one-folder bundle dist/CovidGUI/ (build.spec), then its self-test. The same steps run on
# Windows and macOS in .github/workflows/release.yml.
BUNDLE_EXE ?= dist/CovidGUI/CovidGUI
package: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[package]'
	$(BIN)/pyinstaller --noconfirm build.spec
	QT_QPA_PLATFORM=offscreen $(BUNDLE_EXE) --self-test

clean:
	rm -rf $(VENV) build dist .pytest_cache
