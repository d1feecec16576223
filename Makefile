# Set-up and tests for the anime-core monorepo. Everything goes into .venv in the repo root.
#   make demo PHOTO=path/to/photo.jpg   install everything, then: anime run animegan --style paprika PHOTO
#   make test                           install everything, then run the whole test suite
# The install builds the five distributions (and the example third-party plugin) as wheels into
# dist/wheelhouse and installs "anime-core[all,dev]" from it, so the extras resolve exactly as
# they would from a package index.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEELHOUSE := dist/wheelhouse
DISTS := . ./anime_plugin_animegan ./anime_plugin_cyclegan ./anime_plugin_dcgan ./anime_plugin_ae
EXAMPLES := $(wildcard plugins/*/pyproject.toml)
PHOTO ?= $(firstword $(wildcard ../shared/photos/*.jpg))

.PHONY: install wheels test demo lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

wheels: $(BIN)/python
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) $(DISTS) $(addprefix ./,$(dir $(EXAMPLES)))

install: wheels
	$(BIN)/python -m pip install --quiet --find-links $(WHEELHOUSE) "anime-core[all,dev]"
	# replace any older or editable copies of our own distributions by the freshly built wheels; the example
	# third-party plugin is not part of a user's set-up (its placeholder style would show in every listing)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(filter-out $(WHEELHOUSE)/anime_plugin_example-%,$(wildcard $(WHEELHOUSE)/*.whl))
	-$(BIN)/python -m pip uninstall --quiet --yes anime-plugin-example 2>/dev/null

# the tests also exercise the example third-party plugin, so only they install it
test: install
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(WHEELHOUSE)/anime_plugin_example-*.whl
	$(BIN)/pytest -q

demo: install
	@test -n "$(PHOTO)" || { echo "give a photo: make demo PHOTO=path/to/photo.jpg"; exit 2; }
	$(BIN)/anime run animegan --style paprika "$(PHOTO)" -o anime_out

lint: $(BIN)/python
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) dist build *.egg-info */*.egg-info anime_out
