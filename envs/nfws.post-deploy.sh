#!/usr/bin/env bash
# Run by Snakemake inside the environment of nfws.yaml, once, right after creating it:
# installs the workflow's own checkout (NFWS_WORKFLOW_DIR, set by the Snakefile), editable
# so jobs run the checkout's current code, without dependencies (nfws.yaml pins them).
set -euo pipefail
: "${NFWS_WORKFLOW_DIR:?not set: the Snakefile sets it to the folder holding pyproject.toml}"
python -m pip install --no-deps -e "$NFWS_WORKFLOW_DIR"
