#!/usr/bin/env bash
# The local CC-Agency demo, for a fresh Debian/Ubuntu machine (run as root, or with a Docker engine already there):
#
#   bash deploy/demo/demo.sh          # = start: install what is missing, start a Docker engine (if none answers on
#                                     #   /var/run/docker.sock), a database (SecantusDB, a MongoDB-wire server, in
#                                     #   its own virtualenv), the controller, the broker (http://127.0.0.1:8080) and
#                                     #   a file server (http://127.0.0.1:8081); build the demo image, create the
#                                     #   user "demo", submit an example RED with 4 batches and follow them
#   bash deploy/demo/demo.sh stop     # stop what the demo started (by the PIDs it recorded in .cache/demo/)
#   bash deploy/demo/demo.sh status
#
# Settings (environment): CC_DEMO_MONGO=host:port uses that MongoDB instead of SecantusDB; CC_DEMO_PYTHON names a
# python that already has the project installed (else .cache/demo-venv gets `pip install -e .`); more in demo.py.
# Everything stays on this machine: the servers listen on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
SECANTUS_VERSION=0.7.0b3
COMMAND="${1:-start}"

say() { printf '==> %s\n' "$*"; }
LOG="$REPO/.cache/demo-install.log"
quiet() {   # runs a command with its output in $LOG, shown only when it fails
  mkdir -p "$(dirname "$LOG")"
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "demo: failed: $* (full output in $LOG)" >&2
    exit 1
  fi
}

case "$COMMAND" in
  stop|status)
    exec python3 deploy/demo/demo.py "$COMMAND" ;;
  start) ;;
  *)
    echo "usage: bash deploy/demo/demo.sh [start|stop|status]" >&2
    exit 2 ;;
esac

T0=$SECONDS

# --- system packages: Docker engine, static busybox (for the demo image), python3 with venv -------------------
SOCKET="${CC_DEMO_DOCKER_SOCKET:-/var/run/docker.sock}"
missing=()
engine_answers() { python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(2)
try:
    s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); sys.exit(0 if b" 200 " in s.recv(200) else 1)
except OSError:
    sys.exit(1)' "$SOCKET" 2>/dev/null; }
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# the demo image is made of Debian's own interpreter (localcluster/images.py), whichever python3 runs the demo
[ -x /usr/bin/python3.11 ] || missing+=(python3.11)
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
fi
if ! command -v python3 >/dev/null 2>&1 || ! engine_answers; then
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
fi
busybox_static() {   # a static busybox: ldd refuses it ("not a dynamic executable")
  for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1 && return 0; done; return 1; }
if ! busybox_static; then missing+=(busybox-static); fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  quiet apt-get update
  quiet apt-get install -y "${missing[@]}" python3-venv
fi

# --- the project: a virtualenv with `pip install -e .`, unless CC_DEMO_PYTHON names one that has it -----------
if [ -n "${CC_DEMO_PYTHON:-}" ]; then
  PY="$CC_DEMO_PYTHON"
else
  VENV="$REPO/.cache/demo-venv"
  PY="$VENV/bin/python"
  if ! "$PY" -c 'import cc_agency, sys; sys.exit(0 if cc_agency.__file__.startswith(sys.argv[1]) else 1)' \
       "$REPO/" 2>/dev/null; then
    say "installing the project into $VENV (pip install -e .)"
    quiet python3 -m venv "$VENV"
    quiet "$PY" -m pip install --disable-pip-version-check -e "$REPO"
  fi
fi

# --- the database: SecantusDB in its own virtualenv (never a dependency of the project) ------------------------
if [ -z "${CC_DEMO_MONGO:-}" ] && [ -z "${CC_DEMO_SECANTUSD:-}" ] && \
   [ ! -x "$REPO/.cache/secantus-venv/bin/secantusd-py" ]; then
  say "installing SecantusDB $SECANTUS_VERSION into .cache/secantus-venv (a MongoDB-wire server for the demo)"
  rm -rf "$REPO/.cache/secantus-venv"
  quiet python3 -m venv "$REPO/.cache/secantus-venv"
  quiet "$REPO/.cache/secantus-venv/bin/python" -m pip install --disable-pip-version-check \
    "SecantusDB==$SECANTUS_VERSION"
fi

say "prerequisites ready in $((SECONDS - T0)) s"
exec "$PY" deploy/demo/demo.py start
