#!/usr/bin/env bash
# Create (or reuse) the Python virtualenv used by the conformance suite in
# tests/python, and print the path of its python interpreter on stdout.
#
#   PY=$(scripts/python-env.sh) && "$PY" -m pytest tests/python -q
#
# The venv lives outside the repository, in ${TUMBLER_CACHE:-$HOME/.cache/tumbler}/venv.
# It is reused when the pinned requirements are already installed, so running
# this script again is quick and prints nothing but the path.
set -euo pipefail

CACHE="${TUMBLER_CACHE:-$HOME/.cache/tumbler}"
VENV="$CACHE/venv"
PY="$VENV/bin/python"

# Pinned versions known to install together (awscli 1.45.11 requires botocore 1.43.11).
REQS=(
  "boto3==1.43.11"
  "botocore==1.43.11"
  "awscli==1.45.11"
  "pytest==9.2.0"
  # Test certificates for the webhook rotator tests.
  "cryptography==50.0.2"
  # Clients of the real databases the database rotator tests rotate.
  "psycopg[binary]==3.3.9"
  "PyMySQL==1.2.4"
  # librdkafka, the independent Kafka client of the Kafka SCRAM tests.
  "confluent-kafka==2.16.1"
)
STAMP_CONTENT="${REQS[*]}"
STAMP="$VENV/.tumbler-requirements"

die() { echo "python-env.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 not found; install it (Debian: apt-get install python3 python3-venv)"

if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_CONTENT" ] && "$PY" -c 'import boto3, pytest' >/dev/null 2>&1; then
  echo "$PY"
  exit 0
fi

mkdir -p "$CACHE"
if [ ! -x "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    die "python3 has no ensurepip module, so it cannot create a virtualenv with pip. On Debian/Ubuntu run: apt-get install python3-venv (or python3.X-venv for your version), then re-run this script."
  fi
  if ! python3 -m venv "$VENV" >&2 || [ ! -x "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    die "python3 -m venv $VENV failed: ensurepip/pip is probably missing from this python3. On Debian/Ubuntu run: apt-get install python3-venv, then re-run this script."
  fi
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$PY" -m pip install -q "${REQS[@]}" >&2 || die "pip install failed in $VENV"
printf '%s' "$STAMP_CONTENT" > "$STAMP"
echo "$PY"
