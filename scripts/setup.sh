#!/usr/bin/env bash
# Set up everything labctl needs on a Debian/Ubuntu machine (as root), then run the main job
# or the tests. Safe to re-run: it installs only what is missing and starts the Docker engine
# only when it is not answering.
#
#   bash scripts/setup.sh run  [labctl run options]   # local lab, end to end -> matrix.csv
#   bash scripts/setup.sh test [pytest options]       # ruff, mypy, then the whole test suite
#   bash scripts/setup.sh deps                        # set up only
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
mode="${1:-deps}"
[ $# -gt 0 ] && shift

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get, dockerd, loop devices and debootstrap need it): sudo bash $0 $mode"

# -- system packages --------------------------------------------------------------------------
# docker.io: the engine and client; debootstrap: lab host images; openssh-client: ansible's ssh;
# e2fsprogs/util-linux: lab disks; python3-venv: the controller's venv; genisoimage: the
# cloud-init seed of a qemu host booted from your own image.
pkgs=(docker.io debootstrap openssh-client e2fsprogs util-linux ca-certificates chromium qemu-system-x86 qemu-utils genisoimage)
python="${PYTHON:-python3}"
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then pkgs+=(python3-venv python3-pip); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "labctl needs Python >= 3.10 on the controller ($python is $("$python" -V 2>&1)); set PYTHON=..."

# -- the controller's virtualenv --------------------------------------------------------------
venv="$here/.venv"
stamp="$venv/.labctl-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"

# -- the Docker engine --------------------------------------------------------------------------
engine_ok() { "$venv/bin/python" -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; }
if ! engine_ok; then
  if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
    say "started docker with systemctl"
  else
    say "starting dockerd (log: /var/log/labctl-dockerd.log)"
    setsid dockerd >/var/log/labctl-dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do engine_ok && break; sleep 0.5; done
  engine_ok || die "the Docker engine did not start; see /var/log/labctl-dockerd.log"
fi

case "$mode" in
  deps) say "ready: $venv/bin/labctl" ;;
  run)  exec "$venv/bin/labctl" run "$@" ;;
  test)
    # the code's own checks first: a lint, format or type error fails the run before any test
    say "ruff check, ruff format --check, mypy"
    "$venv/bin/ruff" check --no-cache . || die "ruff check found problems (above)"
    "$venv/bin/ruff" format --check --no-cache . || die "files need \`ruff format\` (above)"
    "$venv/bin/mypy" || die "mypy found type errors (above)"
    set +e
    "$venv/bin/pytest" "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then say "pytest collected no tests"; rc=0; fi
    exit "$rc"
    ;;
  *) die "unknown mode '$mode' (run | test | deps)" ;;
esac
