#!/bin/sh
# Install a Docker engine, write its init files the way its era's systems did, and (re)start it.
# One script for every host, with or without Python (Ansible's module path runs it with
# --init-only after installing a binary with modules; the script path runs all of it), plain
# POSIX sh from CentOS 6.6 to Debian 13.
#
#   --method distro  the distribution's package (its own init files), pinned with --version
#   --method binary  a static binary or tarball (sha256 checked), started by --service:
#     systemd   the unit the engine's own version shipped (--unit upstream; Docker 1.5.0's
#               contrib/init/systemd, whose MountFlags=slave gives the daemon its own mount
#               namespace, the article's CentOS 7.0 setup) or labctl's plain unit (--unit labctl)
#     sysvinit  /etc/init.d/docker reading other_args from /etc/sysconfig/docker, as CentOS 6
#               did (no private mount namespace)
#     upstart   /etc/init/docker.conf reading DOCKER_OPTS from /etc/default/docker, as Ubuntu
#               14.04 did (no private mount namespace)
# Where PID 1 is systemd (every Debian lab host), the SysV script and the upstart job's command
# line run from a docker.service that only wraps them, as systemd-sysv-generator would (the
# generator skips a script when the distribution's docker.service exists; upstart cannot run).
# Prints CHANGED:/NOTE:/STYLE: lines for Ansible; --check only says what it would do;
# --print-upstream UNIT --version V prints a unit as Docker shipped it.
set -u
method=distro version="" service=sysvinit debpkg=docker.io rhpkg=docker rhurl="" url="" file=""
sha="" bindir=/usr/local/bin check=0 unit=auto daemon_args="" restart=0 init_only=0 print_unit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --method) method=$2; shift ;;
    --version) version=$2; shift ;;
    --service) service=$2; shift ;;
    --debian-package) debpkg=$2; shift ;;
    --redhat-package) rhpkg=$2; shift ;;
    --redhat-baseurl) rhurl=$2; shift ;;
    --url) url=$2; shift ;;
    --file) file=$2; shift ;;
    --sha256) sha=$2; shift ;;
    --bindir) bindir=$2; shift ;;
    --unit) unit=$2; shift ;;
    --daemon-args) daemon_args=$2; shift ;;
    --restart) restart=1 ;;
    --init-only) init_only=1 ;;
    --print-upstream) print_unit=$2; shift ;;
    --check) check=1 ;;
    *) echo "ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PATH=$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
stage=/var/cache/labctl-docker

die() { echo "ERROR: $*" >&2; exit 1; }
changed() { echo "CHANGED: $*"; }
do_() { if [ "$check" = 1 ]; then echo "would run: $*"; else "$@"; fi; }

# write FILE from stdin when its content differs; says CHANGED and returns 0 when it wrote
put_file() {
  tmp=$(mktemp) || die "mktemp failed"
  cat > "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  if [ "$check" = 1 ]; then echo "would write $1"; rm -f "$tmp"; return 0; fi
  mkdir -p "$(dirname "$1")" && mv "$tmp" "$1" && chmod "$2" "$1" || die "cannot write $1"
  changed "wrote $1"
  return 0
}

install_distro() {
  if command -v apt-get >/dev/null 2>&1; then
    if [ -n "$version" ]; then
      offered() { apt-cache madison "$debpkg" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'; }
      full=$(offered | grep -E "^([0-9]+:)?$(echo "$version" | sed 's/[.+]/\\&/g')" | head -n 1)
      if [ -z "$full" ]; then do_ apt-get update -qq; full=$(offered | grep -E "^([0-9]+:)?$(echo "$version" | sed 's/[.+]/\\&/g')" | head -n 1); fi
      [ -n "$full" ] || die "$debpkg $version is not offered by this host's apt sources (offered: $(offered | tr '\n' ' ')); use one of those or the binary method"
      current=$(dpkg-query -W -f='${Version}' "$debpkg" 2>/dev/null || true)
      if [ "$current" != "$full" ]; then
        DEBIAN_FRONTEND=noninteractive do_ apt-get install -y -q --allow-downgrades "$debpkg=$full" || die "apt-get install $debpkg=$full failed"
        changed "installed $debpkg $full"
      fi
      if [ "$(dpkg-query -W -f='${Status}' "$debpkg" 2>/dev/null | cut -d' ' -f1)" != hold ]; then
        do_ apt-mark hold "$debpkg" >/dev/null && changed "held $debpkg at $full"
      fi
    elif ! dpkg-query -W -f='${Status}' "$debpkg" 2>/dev/null | grep -q "ok installed"; then
      do_ apt-get update -qq
      DEBIAN_FRONTEND=noninteractive do_ apt-get install -y -q "$debpkg" || die "apt-get install $debpkg failed"
      changed "installed $debpkg"
    fi
  elif command -v yum >/dev/null 2>&1; then
    if [ -n "$rhurl" ]; then
      printf '[labctl-docker]\nname=Docker engine for labctl\nbaseurl=%s\ngpgcheck=0\nenabled=1\n' "$rhurl" \
        | put_file /etc/yum.repos.d/labctl-docker.repo 0644 || true
    fi
    name=$rhpkg${version:+-$version}
    if ! rpm -q "$name" >/dev/null 2>&1; then
      do_ yum install -y -q "$name" || die "yum install $name failed (is the repository reachable? set docker_engine_redhat_repo_baseurl)"
      changed "installed $name"
    fi
  else
    die "no apt-get or yum on this host; use docker_engine_method=binary"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else openssl dgst -sha256 "$1" | sed 's/.*= //'; fi
}

# the staging folder holds what is installed as root: root's own, and nobody else may write there
stage_ok() {
  [ -d "$stage" ] && [ ! -L "$stage" ] || return 1
  set -- $(ls -ldn "$stage")
  [ "$3" = 0 ] && case "$1" in d????-??-*) return 0 ;; esac
  return 1
}

install_binary() {
  mkdir -p "$stage" || die "cannot create $stage"
  stage_ok || die "$stage is not root's own folder (a link, another owner, or writable by others): remove it and run again"
  chmod 700 "$stage"
  if [ -n "$url" ]; then
    art="$stage/$(basename "$url")"
    if [ ! -f "$art" ] || [ "$(sha256_of "$art")" != "$sha" ]; then
      if command -v curl >/dev/null 2>&1; then do_ curl -fsSL -o "$art" "$url" || die "cannot download $url"
      elif command -v wget >/dev/null 2>&1; then do_ wget -q -O "$art" "$url" || die "cannot download $url"
      else die "neither curl nor wget to download $url"; fi
    fi
  else
    [ -f "$file" ] || die "the engine file $file was not copied to the host"
    art="$stage/$(basename "$file")"
    # a copy of root's own: what is checked below and installed is a file nobody else holds
    (umask 077 && cp "$file" "$art.part") && mv -f "$art.part" "$art" || die "cannot copy $file to $stage"
    rm -f "$file"
  fi
  [ "$check" = 1 ] && [ ! -f "$art" ] && return 0
  got=$(sha256_of "$art")
  [ "$got" = "$sha" ] || die "$(basename "$art") has sha256 $got, expected $sha; check docker_engine_binary_sha256"
  case "$art" in
    *.tgz|*.tar.gz|*.tar)
      rm -rf "$stage/unpacked" && mkdir -p "$stage/unpacked" && tar -xf "$art" -C "$stage/unpacked" || die "cannot unpack $art"
      for prog in $(find "$stage/unpacked" -type f); do
        dest="$bindir/$(basename "$prog")"
        if ! cmp -s "$prog" "$dest"; then do_ install -m 0755 "$prog" "$dest" && changed "installed $dest"; restart=1; fi
      done ;;
    *)
      if ! cmp -s "$art" "$bindir/docker"; then do_ install -m 0755 "$art" "$bindir/docker" && changed "installed $bindir/docker"; restart=1; fi ;;
  esac
}

# --- the units Docker shipped itself, verbatim (contrib/init/systemd at the version's tag) -------
upstream_service() {
  case "$v" in
    1.5.0) cat <<'UNIT'
[Unit]
Description=Docker Application Container Engine
Documentation=http://docs.docker.com
After=network.target docker.socket
Requires=docker.socket

[Service]
ExecStart=/usr/bin/docker -d -H fd://
MountFlags=slave
LimitNOFILE=1048576
LimitNPROC=1048576

[Install]
WantedBy=multi-user.target
UNIT
    ;;
    *) return 1 ;;
  esac
}
upstream_socket() {
  case "$v" in
    1.5.0) cat <<'UNIT'
[Unit]
Description=Docker Socket for the API
PartOf=docker.service

[Socket]
ListenStream=/var/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
UNIT
    ;;
    *) return 1 ;;
  esac
}

# a host switched away from the upstream unit keeps neither its drop-in nor its socket
drop_upstream_units() {
  if [ -f /etc/systemd/system/docker.service.d/10-labctl-binary.conf ]; then
    do_ rm -f /etc/systemd/system/docker.service.d/10-labctl-binary.conf && units_changed=1
  fi
  if [ -f /etc/systemd/system/docker.socket ] && upstream_socket | cmp -s - /etc/systemd/system/docker.socket; then
    do_ systemctl disable --now docker.socket >/dev/null 2>&1
    do_ rm -f /etc/systemd/system/docker.socket && units_changed=1
  fi
}
# (callers add `&& units_changed=1`: a function at the end of a pipeline runs in a subshell)
unit_file() { put_file "/etc/systemd/system/$1" 0644; }

write_systemd() {
  if [ "$unit" = auto ]; then
    if upstream_service >/dev/null; then unit=upstream; else unit=labctl; fi
  fi
  if [ "$unit" = upstream ]; then
    upstream_service >/dev/null || die "labctl carries Docker's own systemd unit for 1.5.0 only, not $v; set docker_engine_systemd_unit=labctl"
    getent group docker >/dev/null 2>&1 || do_ groupadd -r docker || die "cannot create the docker group (docker.socket needs it)"
    upstream_service | unit_file docker.service && units_changed=1
    upstream_socket | unit_file docker.socket && units_changed=1
    # the unit as shipped, plus one drop-in: where this binary lives, and the storage options
    # file that CentOS 7's package read (docker_storage writes it)
    printf '# labctl: Docker %s unit as shipped, with the binary from %s and the storage\n# options of /etc/sysconfig/docker-storage (as CentOS 7 read them)\n[Service]\nEnvironmentFile=-/etc/sysconfig/docker-storage\nExecStart=\nExecStart=%s -H fd:// %s $DOCKER_STORAGE_OPTIONS\n' \
      "$v" "$bindir" "$daemon" "$daemon_args" | unit_file docker.service.d/10-labctl-binary.conf && units_changed=1
    echo "STYLE: systemd, Docker $v's own docker.service and docker.socket (MountFlags=$(upstream_service | sed -n 's/^MountFlags=//p'))"
  else
    drop_upstream_units
    printf '[Unit]\nDescription=Docker engine %s (installed by labctl)\nAfter=network-online.target\n\n[Service]\nType=simple\nEnvironmentFile=-/etc/sysconfig/docker-storage\nExecStart=%s %s $DOCKER_STORAGE_OPTIONS\nDelegate=yes\nKillMode=process\nLimitNOFILE=1048576\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n' \
      "$v" "$daemon" "$daemon_args" | unit_file docker.service && units_changed=1
    echo "STYLE: systemd, labctl's unit (no private mount namespace)"
  fi
}

# a docker.service that only runs what another init system would run, on a systemd host
wrapper_unit() {  # wrapper_unit DESCRIPTION TYPE EXECSTART [EXECSTOP]
  drop_upstream_units
  {
    printf '# labctl: %s\n[Unit]\nDescription=%s\nAfter=network-online.target\n\n[Service]\nType=%s\n' "$1" "$1" "$2"
    [ "$2" = forking ] && printf 'PIDFile=/var/run/docker.pid\nGuessMainPID=no\n'
    printf 'ExecStart=%s\n' "$3"
    [ -n "${4:-}" ] && printf 'ExecStop=%s\n' "$4"
    printf 'KillMode=process\nTimeoutSec=300\nLimitNOFILE=1048576\n\n[Install]\nWantedBy=multi-user.target\n'
  } | unit_file docker.service
}

write_sysvinit() {
  cat <<INIT | put_file /etc/init.d/docker 0755
#!/bin/sh
# chkconfig: 2345 95 95
# description: Docker engine $v (installed by labctl), started the CentOS 6 way
### BEGIN INIT INFO
# Provides: docker
# Required-Start: \$network \$remote_fs
# Required-Stop: \$network \$remote_fs
# Default-Start: 2 3 4 5
# Default-Stop: 0 1 6
### END INIT INFO
pidfile=/var/run/docker.pid
logfile=/var/log/docker
other_args=
[ -r /etc/sysconfig/docker ] && . /etc/sysconfig/docker
running() { [ -f "\$pidfile" ] && kill -0 "\$(cat "\$pidfile")" 2>/dev/null; }
case "\$1" in
  start) running && exit 0
         $daemon -p "\$pidfile" $daemon_args \$other_args >>"\$logfile" 2>&1 </dev/null &
         i=0; while [ \$i -lt 60 ] && ! running; do sleep 1; i=\$((i+1)); done; running ;;
  stop) running || exit 0; kill "\$(cat "\$pidfile")"
        i=0; while [ \$i -lt 60 ] && running; do sleep 1; i=\$((i+1)); done; ! running ;;
  restart) "\$0" stop; "\$0" start ;;
  status) if running; then echo "docker is running"; else echo "docker is stopped"; exit 3; fi ;;
  *) echo "usage: \$0 {start|stop|restart|status}"; exit 2 ;;
esac
INIT
  [ $? -eq 0 ] && units_changed=1
  if [ "$pid1_systemd" = 1 ]; then
    wrapper_unit "Docker $v from its SysV init script /etc/init.d/docker (as systemd-sysv-generator runs it)" \
      forking "/etc/init.d/docker start" "/etc/init.d/docker stop" && units_changed=1
    echo "STYLE: sysvinit, /etc/init.d/docker run by a docker.service wrapper (PID 1 is systemd; no private mount namespace)"
  else
    echo "STYLE: sysvinit, /etc/init.d/docker"
  fi
}

write_upstart() {
  printf 'description "Docker engine %s (installed by labctl)"\nstart on (local-filesystems and net-device-up IFACE!=lo)\nstop on runlevel [!2345]\nlimit nofile 524288 1048576\nrespawn\nscript\n  DOCKER_OPTS=\n  if [ -f /etc/default/docker ]; then . /etc/default/docker; fi\n  exec %s %s $DOCKER_OPTS\nend script\n' \
    "$v" "$daemon" "$daemon_args" | put_file /etc/init/docker.conf 0644 && units_changed=1
  [ -f /etc/default/docker ] || printf '# Docker options (read by /etc/init/docker.conf)\n#DOCKER_OPTS="--storage-driver=aufs"\n' | put_file /etc/default/docker 0644
  if [ "$has_upstart" = 1 ]; then
    echo "STYLE: upstart, /etc/init/docker.conf"
  elif [ "$pid1_systemd" = 1 ]; then
    # ($$ is systemd's escape for a $ that the shell, not systemd, expands)
    wrapper_unit "Docker $v with the command line of the upstart job /etc/init/docker.conf (upstart cannot run on this host)" \
      simple "/bin/sh -c '. /etc/default/docker 2>/dev/null; exec $daemon $daemon_args \$\$DOCKER_OPTS'" && units_changed=1
    echo "NOTE: upstart cannot run on this host (PID 1 is systemd): /etc/init/docker.conf is written for reference and docker.service runs its command line with /etc/default/docker's DOCKER_OPTS (no private mount namespace, as under upstart)"
    echo "STYLE: upstart job's command line from a docker.service wrapper"
  else
    die "no upstart and no systemd on this host: cannot start the upstart-style engine"
  fi
}

start_engine() {
  answers() { docker version 2>/dev/null | grep -qiE '^Server|^ *Engine'; }
  if [ "$service" = labctl ]; then
    if [ "$restart" = 1 ]; then do_ /usr/local/sbin/labctl-dockerd stop >/dev/null; fi
    if [ "$restart" = 1 ] || ! answers; then
      do_ /usr/local/sbin/labctl-dockerd start >/dev/null || die "labctl-dockerd start failed (see /var/log/dockerd.log)"
      changed "started the engine (labctl-dockerd)"
    fi
  elif [ "$pid1_systemd" = 1 ]; then
    do_ systemctl enable docker.service >/dev/null 2>&1
    if [ "$restart" = 1 ]; then
      do_ systemctl restart docker.service || die "systemctl restart docker failed (journalctl -u docker)"
      changed "restarted the engine (docker.service)"
    elif ! systemctl is-active docker.service >/dev/null 2>&1; then
      do_ systemctl start docker.service || die "systemctl start docker failed (journalctl -u docker)"
      changed "started the engine (docker.service)"
    fi
  elif [ "$service" = upstart ] && [ -f /etc/init/docker.conf ]; then
    if [ "$restart" = 1 ]; then do_ stop docker >/dev/null 2>&1; fi
    if [ "$restart" = 1 ] || ! answers; then
      do_ start docker || die "start docker failed (see /var/log/upstart/docker.log)"
      changed "started the engine (upstart)"
    fi
  else
    if command -v chkconfig >/dev/null 2>&1; then do_ chkconfig docker on
    elif command -v update-rc.d >/dev/null 2>&1; then do_ update-rc.d docker defaults >/dev/null 2>&1; fi
    if [ "$restart" = 1 ]; then do_ /etc/init.d/docker restart || die "/etc/init.d/docker restart failed (see /var/log/docker)"
    elif ! answers; then do_ /etc/init.d/docker start || die "/etc/init.d/docker start failed (see /var/log/docker)"; fi
    changed "started the engine (/etc/init.d/docker)"
  fi
}

# --- main --------------------------------------------------------------------------------------
if [ -n "$print_unit" ]; then
  v=$version
  case "$print_unit" in
    docker.service) upstream_service ;;
    docker.socket) upstream_socket ;;
    *) false ;;
  esac || die "labctl carries no upstream $print_unit for Docker ${v:-?}"
  exit 0
fi
case "$method" in
  distro) install_distro ;;
  binary) [ -n "$sha" ] || [ "$init_only" = 1 ] || die "the binary method needs docker_engine_binary_sha256"
          [ "$init_only" = 1 ] || install_binary ;;
  *) die "docker_engine_method must be distro or binary, not $method" ;;
esac
pid1_systemd=0; [ -d /run/systemd/system ] && pid1_systemd=1
units_changed=0
if [ "$method" = binary ]; then
  [ -x "$bindir/docker" ] || [ -x "$bindir/dockerd" ] || die "no docker binary in $bindir"
  v=${version:-$("$bindir/docker" -v 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')}
  major=${v%%.*}; rest=${v#*.}; minor=${rest%%.*}
  if [ "${major:-0}" -le 1 ] && [ "${minor:-0}" -lt 8 ]; then daemon="$bindir/docker -d"
  elif [ "${major:-0}" -le 1 ] && [ "${minor:-0}" -lt 12 ]; then daemon="$bindir/docker daemon"
  else daemon="$bindir/dockerd"; fi
  has_upstart=0
  command -v initctl >/dev/null 2>&1 && initctl version 2>/dev/null | grep -q upstart && has_upstart=1

  case "$service" in
    systemd) [ "$pid1_systemd" = 1 ] || die "PID 1 is not systemd here; choose docker_engine_service_manager=sysvinit or upstart"
             write_systemd ;;
    sysvinit) write_sysvinit ;;
    upstart) write_upstart ;;
    labctl) echo "STYLE: labctl container lab host (labctl-dockerd)" ;;
    *) die "unknown service manager $service (systemd | sysvinit | upstart | labctl)" ;;
  esac

  # --- take over from a distribution engine that would hold the socket or run beside ours --------
  if [ "$pid1_systemd" = 1 ] && [ "$service" != labctl ]; then
    if [ "$service" != systemd ] || [ "$unit" != upstream ]; then
      if systemctl is-enabled docker.socket >/dev/null 2>&1 || systemctl is-active docker.socket >/dev/null 2>&1; then
        do_ systemctl disable --now docker.socket >/dev/null 2>&1 && changed "stopped and disabled the distribution's docker.socket"
      fi
    fi
    if [ "${major:-0}" -le 1 ] && [ "${minor:-0}" -lt 11 ] && systemctl is-active containerd.service >/dev/null 2>&1; then
      do_ systemctl disable --now containerd.service >/dev/null 2>&1 && changed "stopped containerd (Docker $v does not use it)"
    fi
    [ "$units_changed" = 1 ] && do_ systemctl daemon-reload
  fi
  [ "$units_changed" = 1 ] && restart=1
fi

start_engine
exit 0
