#!/usr/bin/env bash
# Kept for old habits and scripts: the logic lives in scripts/ensure_services.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/ensure_services.py "$@"
