#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh Debian machine (as root), then runs them all.
#
#   bash tests/run.sh [pytest arguments]      e.g. bash tests/run.sh tests/unit -x
#
# It installs the system packages (Docker engine, registry, busybox, libfuse2 and fusermount for the test image's FUSE
# connector, uwsgi, Apache, the browser ...), SecantusDB
# (a MongoDB-wire server, in its own virtual environment: never a dependency of the product), red-connector-http
# in its own virtual environment (what the agent's connector test runs), the project with its test extra, and then
# runs `python3 -m pytest`. The tests start their own services (Docker engines, SecantusDB, HTTP servers) through
# the fixtures in tests/conftest.py. A skipped test fails the run (CC_FAIL_ON_SKIP), and so does collecting none.
# Steps whose result is already there are skipped, so a second run starts testing at once.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# when python3 is Debian's own interpreter, pip refuses to install without this (PEP 668)
export PIP_BREAK_SYSTEM_PACKAGES=1
SECANTUS_VERSION=0.7.0b3
APT_PACKAGES=(docker.io docker-registry busybox-static python3 python3-venv openssl curl uwsgi uwsgi-plugin-python3
              fuse libfuse2
              apache2 systemd chromium)

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "system packages"
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update
  apt-get install -y "${missing[@]}"
else
  echo "already there"
fi

step "SecantusDB $SECANTUS_VERSION in .cache/secantus-venv"
if [ -x .cache/secantus-venv/bin/secantusd-py ]; then
  echo "already there"
else
  rm -rf .cache/secantus-venv
  python3 -m venv .cache/secantus-venv
  .cache/secantus-venv/bin/python -m pip install "SecantusDB==$SECANTUS_VERSION"
fi

step "red-connector-http in .cache/rch-venv"
if [ -x .cache/rch-venv/bin/red-connector-http ]; then
  echo "already there"
else
  rm -rf .cache/rch-venv
  python3 -m venv .cache/rch-venv
  .cache/rch-venv/bin/python -m pip install -r localcluster/image/requirements.txt
fi

step "project and test dependencies"
python3 -m pip install -e '.[test]'

step "tests: python3 -m pytest $*"
rc=0
CC_FAIL_ON_SKIP=1 python3 -m pytest "$@" || rc=$?
step "done"
if [ "$rc" -ne 0 ]; then
  # 5 = no tests collected, which is a failure too
  echo "pytest failed with exit status $rc" >&2
  exit "$rc"
fi
