#!/bin/sh
# Set the Docker storage driver where this host's engine reads it, and switch safely: refuse
# while containers exist unless told to export them and wipe; then export each container,
# stop the engine, clear the docker root, start, and verify `docker info`.
# Plain POSIX sh, no Python needed. Prints CHANGED/WOULD/DRIVER lines for Ansible.
set -u
driver="" opts="" style=daemon_json root=/var/lib/docker backup=/var/backups/labctl-docker
service=auto wipe=0 check=0 preconfigure=0
while [ $# -gt 0 ]; do
  case "$1" in
    --driver) driver=$2; shift ;;
    --opts) opts=$2; shift ;;
    --style) style=$2; shift ;;
    --root) root=$2; shift ;;
    --backup) backup=$2; shift ;;
    --service) service=$2; shift ;;
    --export-and-wipe) wipe=1 ;;
    --check) check=1 ;;
    --preconfigure) preconfigure=1 ;;
    *) echo "ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
die() { echo "ERROR: $*" >&2; exit 1; }
[ -n "$driver" ] || die "no --driver given"

current_driver() { docker info 2>/dev/null | sed -n 's/^ *Storage Driver: *//p' | head -n 1; }

# the daemon flags for the driver and its options
flags="--storage-driver=$driver"
old_ifs=$IFS; IFS=,
for o in $opts; do [ -n "$o" ] && flags="$flags --storage-opt $o"; done
IFS=$old_ifs

# write FILE from stdin when different; return 0 when it changed (or would)
put_file() {
  tmp=$(mktemp) || die "mktemp failed"
  cat > "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  if [ "$check" = 1 ]; then rm -f "$tmp"; echo "WOULD write $1"; return 0; fi
  mkdir -p "$(dirname "$1")" && cat "$tmp" > "$1" && rm -f "$tmp" || die "cannot write $1"
  echo "CHANGED: wrote $1"
  return 0
}

# replace (or add) labctl's managed block at the end of a shell-style config file
managed_block() {
  file=$1; line=$2
  { [ -f "$file" ] && sed '/^# BEGIN labctl docker_storage$/,/^# END labctl docker_storage$/d' "$file"
    printf '# BEGIN labctl docker_storage\n%s\n# END labctl docker_storage\n' "$line"; } | put_file "$file" 0644
}

json_set() {
  file=$1
  py=$(command -v python3 || command -v python2 || command -v python || true)
  if [ -n "$py" ]; then
    "$py" - "$file" "$driver" "$opts" <<'PY' | put_file "$file" 0644
import json, sys
path, drv, opts = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    data = json.load(open(path))
except (IOError, OSError, ValueError):
    data = {}
data["storage-driver"] = drv
if opts:
    data["storage-opts"] = [o for o in opts.split(",") if o]
else:
    data.pop("storage-opts", None)
sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
PY
  else
    # no Python at all: keep the file flat and rewrite its two keys with sed
    { if [ -f "$file" ]; then
        sed -e '/"storage-driver"/d' -e '/"storage-opts"/d' -e 's/^{ *$/{/' "$file"
      else echo '{'; echo '}'; fi; } > "$file.labctl.$$"
    list=""
    old_ifs=$IFS; IFS=,
    for o in $opts; do [ -n "$o" ] && list="$list${list:+, }\"$o\""; done
    IFS=$old_ifs
    extra="  \"storage-driver\": \"$driver\""
    [ -n "$list" ] && extra="$extra,
  \"storage-opts\": [$list]"
    awk -v extra="$extra" 'NR==1 && /^\{/ { print; rest = 1; next }
      { lines[++n] = $0 } END { body = 0; for (i = 1; i <= n; i++) if (lines[i] !~ /^[{} ]*$/) body = 1;
        if (body) print extra ","; else print extra; for (i = 1; i <= n; i++) print lines[i] }' \
      "$file.labctl.$$" | put_file "$file" 0644
    rc=$?; rm -f "$file.labctl.$$"; return $rc
  fi
}

write_config() {
  case "$style" in
    daemon_json) json_set /etc/docker/daemon.json ;;
    sysconfig) managed_block /etc/sysconfig/docker "other_args=\"\${other_args:-} $flags\"" ;;
    sysconfig_storage) printf 'DOCKER_STORAGE_OPTIONS="%s"\n' "$flags" | put_file /etc/sysconfig/docker-storage 0644 ;;
    default_opts) managed_block /etc/default/docker "DOCKER_OPTS=\"\${DOCKER_OPTS:-} $flags\"" ;;
    *) die "unknown config style $style" ;;
  esac
}

engine() {  # engine start|stop, through whatever starts it on this host
  if [ "$service" = labctl ] || { [ "$service" = auto ] && [ -x /usr/local/sbin/labctl-dockerd ]; }; then
    /usr/local/sbin/labctl-dockerd "$1" >/dev/null
  elif [ -d /run/systemd/system ]; then
    systemctl "$1" docker  # also the wrappers of a SysV script or an upstart job line
  elif [ "$service" = upstart ]; then
    "$1" docker >/dev/null 2>&1 || [ "$1" = stop ]
  else
    service docker "$1"
  fi
}

wait_engine() {
  i=0
  while [ $i -lt 60 ]; do docker info >/dev/null 2>&1 && return 0; sleep 1; i=$((i + 1)); done
  return 1
}

cur=$(current_driver)
# --preconfigure, before an engine's first start: write the settings so that first start uses
# them (one start instead of a start and a restart; Docker 1.5.0 takes ~30 s to start on a TCG
# VM). Only while no engine answers and the docker root holds nothing: else the switch below
# runs as usual, after the start.
if [ "$preconfigure" = 1 ]; then
  if [ -n "$cur" ]; then echo "NOTE: the engine runs already; the settings follow its start"; exit 0; fi
  # a fresh filesystem of its own holds lost+found only: that is nothing to lose
  if [ -d "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null | grep -vx 'lost+found')" ]; then
    echo "NOTE: $root holds data; the settings follow the engine's start"; exit 0
  fi
  write_config || true
  exit 0
fi
[ -n "$cur" ] || die "the Docker engine does not answer (docker info); start it first (docker_engine role)"

if [ "$cur" = "$driver" ]; then
  cfg_changed=1
  write_config || cfg_changed=0
  if [ "$cfg_changed" = 1 ] && [ "$check" = 0 ]; then
    engine stop || die "cannot stop the engine"
    engine start && wait_engine || die "the engine did not come back after the settings changed"
    echo "CHANGED: restarted the engine for the new storage options"
  fi
  echo "DRIVER $(current_driver)"
  exit 0
fi

containers=$(docker ps -aq)
n=$(echo "$containers" | grep -c . || true)
if [ "$n" -gt 0 ] && [ "$wipe" = 0 ]; then
  die "$n container(s) exist on driver $cur; switching to $driver makes them unusable. Set docker_storage_export_and_wipe=true to export them to $backup and clear $root"
fi
if [ "$check" = 1 ]; then
  write_config || true
  echo "WOULD switch the storage driver $cur -> $driver (export $n container(s), clear $root)"
  exit 0
fi
if [ "$n" -gt 0 ]; then
  dir="$backup/$(date -u +%Y%m%dT%H%M%SZ)-$cur"
  mkdir -p "$dir" || die "cannot create $dir"
  for c in $containers; do
    name=$(docker inspect --format '{{.Name}}' "$c" 2>/dev/null | tr -d /)
    docker export "$c" > "$dir/${name:-$c}.tar" || die "docker export of $c failed; nothing was wiped"
    echo "CHANGED: exported $c to $dir/${name:-$c}.tar"
  done
fi
write_config || true
engine stop || die "cannot stop the engine"
# unmount what the old driver left mounted below the root, deepest first, then clear it
awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
find "$root" -mindepth 1 -maxdepth 1 -exec rm -rf {} + || die "cannot clear $root"
engine start && wait_engine || die "the engine did not start with driver $driver (see its log)"
new=$(current_driver)
[ "$new" = "$driver" ] || die "the engine reports driver $new after the switch, not $driver"
echo "CHANGED: switched the storage driver $cur -> $new"
echo "DRIVER $new"
