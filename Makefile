# Set-up and tests for the anime-core monorepo. Everything goes into .venv in the repo root.
#   make demo PHOTO=path/to/photo.jpg   install everything, then: anime run animegan --style paprika PHOTO
#   make test                           install everything, then run the whole test suite (PYTEST_ARGS=... to narrow it)
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
# the example third-party plugin, for the tests only: installed here, never into .venv
TEST_SITE := dist/test-site
OURS := anime-core anime-plugin-animegan anime-plugin-cyclegan anime-plugin-dcgan anime-plugin-ae
PYTEST_ARGS ?=
# pytest-xdist workers: the tests run one torch thread each, so one worker per core (0: in this process)
TEST_WORKERS ?= 2

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
	# an older "make test" installed the example into .venv; take it out (a failed uninstall fails the install)
	if $(BIN)/python -m pip show --quiet anime-plugin-example >/dev/null 2>&1; then \
	  $(BIN)/python -m pip uninstall --quiet --yes anime-plugin-example; fi

# The tests also exercise the example third-party plugin. It goes into $(TEST_SITE), which only pytest and
# the commands it starts see (PYTHONPATH), so .venv never holds it; the last step proves that .venv's plugins
# are only ours. A failing pytest stops make here with an error, like any failing step.
test: install
	rm -rf $(TEST_SITE)
	$(BIN)/python -m pip install --quiet --no-deps --target $(TEST_SITE) $(WHEELHOUSE)/anime_plugin_example-*.whl
	PYTHONPATH="$(abspath $(TEST_SITE))$${PYTHONPATH:+:$$PYTHONPATH}" $(BIN)/pytest -q -rs -n $(TEST_WORKERS) $(PYTEST_ARGS)
	$(BIN)/python -I -c "$$ONLY_OURS" $(OURS)

# fails naming what .venv holds besides our distributions: another anime.plugins entry point, or the example
define ONLY_OURS
import importlib.metadata as md, importlib.util as iu, sys
others = sorted({ep.dist.metadata["Name"] for ep in md.entry_points(group="anime.plugins")} - set(sys.argv[1:]))
if iu.find_spec("anime_example_plugin"):
    others.append("anime_example_plugin (module)")
sys.exit(f".venv holds plugins that are not ours: {', '.join(others)}" if others else None)
endef
export ONLY_OURS

demo: install
	@test -n "$(PHOTO)" || { echo "give a photo: make demo PHOTO=path/to/photo.jpg"; exit 2; }
	$(BIN)/anime run animegan --style paprika "$(PHOTO)" -o anime_out

lint: $(BIN)/python
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) dist build *.egg-info */*.egg-info anime_out
