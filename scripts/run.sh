#!/usr/bin/env bash
# Runs questlog (every service in one process) on 127.0.0.1:8080 against local PostgreSQL and NATS,
# starting them (or installing them on a fresh Debian machine) when needed. Arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
ensure_services
exec cargo run --release -p questlog -- serve "$@"
