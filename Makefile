# Two entry points do everything on a fresh machine (see README):
#   make demo   - set up, then a round trip on the default model
#   make test   - set up, then the whole test suite (what CI runs)
# and a quicker tier for development:
#   make test-fast - the unit tier (markers in UNIT_TIER below)
#
# Python: the active virtual environment ($VIRTUAL_ENV), else the project's own .venv, created here
# without system site packages (Debian's python3 refuses `pip install` outside a virtual environment).
# System packages: .ci/system-packages installs the missing ones (root or sudo without a password)
# or stops with the apt-get line to run.
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PYTHON := $(VENV)/bin/python
# In the environment, so that a switch of environment sets up again.
SETUP_STAMP := $(VENV)/.semanticodec_rt-setup-stamp
EXT_SOURCES := setup.py CMakeLists.txt pyproject.toml $(wildcard csrc/*) $(wildcard cuda/*)
# The unit tier: all but the full-size round trip (slow), the training runs (train) and the tests
# that take seconds each (heavy: end-to-end decodes, real-time audio and UDP runs, eval metrics,
# the corpus download).  Measured times in README.
UNIT_TIER := not slow and not train and not heavy

.PHONY: setup demo test test-fast test-golden clean system-packages system-packages-demo

setup: $(SETUP_STAMP)

system-packages:
	@.ci/system-packages

system-packages-demo:
	@.ci/system-packages --demo

$(VENV)/bin/python: | system-packages-demo
	python3 -m venv $(VENV)

# An old pip and setuptools in a new venv cannot build the editable install (`invalid command
# 'bdist_wheel'`): pip is upgraded, then wheel and setuptools >= 70.1 are installed first.
# torch is installed on its own, pinned: an unpinned torch would pull GBs of CUDA packages.
# The extension is built without build isolation so that CMake sees this interpreter's packages.
$(SETUP_STAMP): $(PYTHON) $(EXT_SOURCES) | system-packages-demo
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install wheel "setuptools>=70.1"
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install numpy scipy soundfile safetensors tqdm pybind11 ninja "cmake>=3.18" pytest pytest-benchmark sounddevice JACK-Client
	for p in pesq pystoi visqol-python libsvm-official ai-edge-litert numba pocketsphinx matplotlib; do $(PYTHON) -m pip install $$p || exit 1; done  # one per command (pip 23.2 resolver bug)
	$(PYTHON) -m pip install --no-build-isolation --no-deps -e .
	@mkdir -p $(dir $@) && touch $@

# Round trip of the shipped example clip on the embedded default model (MODEL_CARD.md):
# out/<clip>.scrt, out/<clip>_decoded.wav and out/<clip>_spectrogram.png.
demo: setup
	$(PYTHON) examples/demo.py --out out

# Everything, including the ~1 min full-size random-weight round trip (marker `slow`).
# SCRT_REQUIRE_*: the extension and the system packages are installed now, so a test that finds
# one missing fails instead of skipping.
test: system-packages setup
	SCRT_REQUIRE_EXT=1 SCRT_REQUIRE_TOOLS=1 $(PYTHON) -m pytest -q

test-golden: setup
	$(PYTHON) -m pytest -q -m "golden or manifest"

test-fast: system-packages setup
	SCRT_REQUIRE_EXT=1 SCRT_REQUIRE_TOOLS=1 $(PYTHON) -m pytest -q -m "$(UNIT_TIER)"

clean:
	rm -rf build *.egg-info semanticodec_rt/*.so out $(SETUP_STAMP)
