# vmgitops developer entry points. `make demo` and `make test` work from a fresh clone.
SHELL := /bin/bash
PY := .venv/bin/python
export KUBECONFIG := $(CURDIR)/.dev/kubeconfig

.PHONY: setup up down test test-unit demo lint crds bench chaos clean

setup:
	@bash hack/setup.sh

up: setup
	@bash hack/up.sh

down:
	@bash hack/down.sh

test: setup
	@bash hack/test.sh

test-unit: setup
	@.venv/bin/pytest -q tests/unit

demo: setup
	@bash hack/demo.sh

lint: setup
	.venv/bin/ruff check operator tests bench hack
	.venv/bin/ruff format --check operator tests
	.venv/bin/mypy
	.venv/bin/lint-imports

crds: setup
	$(PY) -m vmgitops.api.crdgen crds
	@mkdir -p charts/vmgitops/crds && cp crds/*.yaml charts/vmgitops/crds/

bench: setup
	@bash bench/run.sh

chaos: setup
	@VMGITOPS_CHAOS=full bash hack/test.sh tests/chaos tests/security tests/unit/security

clean: down
	rm -rf .dev
