# Two entry points do everything on a fresh machine (see README):
#   make demo   - set up, then a round trip on the default model
#   make test   - set up, then the test suite
PYTHON ?= python3
SETUP_STAMP := build/.setup-stamp
EXT_SOURCES := setup.py CMakeLists.txt pyproject.toml $(wildcard csrc/*) $(wildcard cuda/*)

.PHONY: setup demo test test-fast test-golden clean

setup: $(SETUP_STAMP)

# torch is installed on its own, pinned: an unpinned torch would pull GBs of CUDA packages.
# The extension is built without build isolation so that CMake sees this interpreter's packages.
$(SETUP_STAMP): $(EXT_SOURCES)
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
test: setup
	SCRT_REQUIRE_EXT=1 $(PYTHON) -m pytest -q

test-golden: setup
	$(PYTHON) -m pytest -q -m "golden or manifest"

test-fast: setup
	SCRT_REQUIRE_EXT=1 $(PYTHON) -m pytest -q -m "not slow"

clean:
	rm -rf build *.egg-info semanticodec_rt/*.so out
