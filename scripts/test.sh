#!/usr/bin/env bash
# Runs questlog's whole test suite against real PostgreSQL and nats-server (started, or installed
# on a fresh Debian machine, when needed). Every test makes its own database and JetStream names.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
ensure_services
ensure_chromium
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; running the suite with cargo test" >&2
  cargo test --workspace --no-fail-fast "$@"
fi
