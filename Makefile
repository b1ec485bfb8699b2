# Thin front over CMake (the real build). `make help` lists the targets.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all configure test train bench clean help data
all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

data: all
	bash dev/data/tinyshakespeare.sh

train: all data
	bash scripts/run_default.sh

bench: all
	BUILD=$(BUILD) bash dev/bench_all.sh

clean:
	rm -rf $(BUILD)

help:
	@echo "make        build everything into $(BUILD)/"
	@echo "make test   build and run all tests (ctest)"
	@echo "make data   tokenize the bundled tinyshakespeare into data/tinyshakespeare/"
	@echo "make train  train a small GPT-2 on tinyshakespeare (GPU if present, else CPU) and sample"
	@echo "make bench  run the CPU benchmarks in dev/ (dev/bench_all.sh: figures + an ok/FAILED summary)"
	@echo "make clean  remove $(BUILD)/"
