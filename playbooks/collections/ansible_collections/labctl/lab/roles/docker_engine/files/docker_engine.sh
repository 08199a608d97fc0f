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
print_era=""
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
    --print-era) print_era=$2; shift ;;
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

# --- the init files of 2015, verbatim (files/era/PROVENANCE.md says where each comes from; the
# unit tests compare them with their sources) ------------------------------------------------
#   sysvinit-epel    /etc/init.d/docker of EPEL's docker-io 1.5.0-1 for EL6 (what CentOS 6.6 ran):
#                    `$exec -d $other_args $DOCKER_STORAGE_OPTIONS &>> $logfile &`, no unshare
#   sysvinit-docker  Docker 1.5.0's contrib/init/sysvinit-redhat/docker: `"$unshare" -m -- ...`
#   upstart          Docker 1.5.0's contrib/init/upstart/docker.conf (Ubuntu 14.04's way)
#   systemd-centos   docker.service of CentOS 7's extras package docker-1.5.0-11 (MountFlags=slave)
era_text() {
  case "$1" in
    sysvinit-epel) cat <<'LABCTL_ERA_END'
#!/bin/sh
#
#       /etc/rc.d/init.d/docker
#
#       Daemon for docker.com
#
# chkconfig:   2345 95 95
# description: Daemon for docker.com

### BEGIN INIT INFO
# Provides:       docker
# Required-Start: $network cgconfig
# Required-Stop:
# Should-Start:
# Should-Stop:
# Default-Start: 2 3 4 5
# Default-Stop:  0 1 6
# Short-Description: start and stop docker
# Description: Daemon for docker.com
### END INIT INFO

# Source function library.
. /etc/rc.d/init.d/functions

prog="docker"
exec="/usr/bin/$prog"
pidfile="/var/run/$prog.pid"
lockfile="/var/lock/subsys/$prog"
logfile="/var/log/$prog"

[ -e /etc/sysconfig/$prog ] && . /etc/sysconfig/$prog
[ -e /etc/sysconfig/$prog-storage ] && . /etc/sysconfig/$prog-storage

prestart() {
    service cgconfig status > /dev/null

    if [[ $? != 0 ]]; then
        service cgconfig start
    fi

}

start() {
    [ -x $exec ] || exit 5

    check_for_cleanup

    if ! [ -f $pidfile ]; then
        prestart
        printf "Starting $prog:\t"
        echo "\n$(date)\n" >> $logfile
        $exec -d $other_args $DOCKER_STORAGE_OPTIONS &>> $logfile &
        pid=$!
        touch $lockfile
        # wait up to 10 seconds for the pidfile to exist.  see
        # https://github.com/docker/docker/issues/5359
        tries=0
        while [ ! -f $pidfile -a $tries -lt 10 ]; do
            sleep 1
            tries=$((tries + 1))
        done
        success
        echo
    else
        failure
        echo
        printf "$pidfile still exists...\n"
        exit 7
    fi
}

stop() {
    echo -n $"Stopping $prog: "
    killproc -p $pidfile -d 300 $prog
    retval=$?
    echo
    [ $retval -eq 0 ] && rm -f $lockfile
    return $retval
}

restart() {
    stop
    start
}

reload() {
    restart
}

force_reload() {
    restart
}

rh_status() {
    status -p $pidfile $prog
}

rh_status_q() {
    rh_status >/dev/null 2>&1
}

check_for_cleanup() {
    if [ -f ${pidfile} ]; then
        /bin/ps -fp $(cat ${pidfile}) > /dev/null || rm ${pidfile}
    fi
}

case "$1" in
    start)
        rh_status_q && exit 0
        $1
        ;;
    stop)
        rh_status_q || exit 0
        $1
        ;;
    restart)
        $1
        ;;
    reload)
        rh_status_q || exit 7
        $1
        ;;
    force-reload)
        force_reload
        ;;
    status)
        rh_status
        ;;
    condrestart|try-restart)
        rh_status_q || exit 0
        restart
        ;;
    *)
        echo $"Usage: $0 {start|stop|status|restart|condrestart|try-restart|reload|force-reload}"
        exit 2
esac

exit $?
LABCTL_ERA_END
    ;;
    sysvinit-docker) cat <<'LABCTL_ERA_END'
#!/bin/sh
#
#       /etc/rc.d/init.d/docker
#
#       Daemon for docker.com
#
# chkconfig:   2345 95 95
# description: Daemon for docker.com

### BEGIN INIT INFO
# Provides:       docker
# Required-Start: $network cgconfig
# Required-Stop:
# Should-Start:
# Should-Stop:
# Default-Start: 2 3 4 5
# Default-Stop:  0 1 6
# Short-Description: start and stop docker
# Description: Daemon for docker.com
### END INIT INFO

# Source function library.
. /etc/rc.d/init.d/functions

prog="docker"
unshare=/usr/bin/unshare
exec="/usr/bin/$prog"
pidfile="/var/run/$prog.pid"
lockfile="/var/lock/subsys/$prog"
logfile="/var/log/$prog"

[ -e /etc/sysconfig/$prog ] && . /etc/sysconfig/$prog

prestart() {
    service cgconfig status > /dev/null

    if [[ $? != 0 ]]; then
        service cgconfig start
    fi

}

start() {
    [ -x $exec ] || exit 5

    if ! [ -f $pidfile ]; then
        prestart
        printf "Starting $prog:\t"
        echo "\n$(date)\n" >> $logfile
        "$unshare" -m -- $exec -d $other_args &>> $logfile &
        pid=$!
        touch $lockfile
        # wait up to 10 seconds for the pidfile to exist.  see
        # https://github.com/docker/docker/issues/5359
        tries=0
        while [ ! -f $pidfile -a $tries -lt 10 ]; do
            sleep 1
            tries=$((tries + 1))
        done
        success
        echo
    else
        failure
        echo
        printf "$pidfile still exists...\n"
        exit 7
    fi
}

stop() {
    echo -n $"Stopping $prog: "
    killproc -p $pidfile -d 300 $prog
    retval=$?
    echo
    [ $retval -eq 0 ] && rm -f $lockfile
    return $retval
}

restart() {
    stop
    start
}

reload() {
    restart
}

force_reload() {
    restart
}

rh_status() {
    status -p $pidfile $prog
}

rh_status_q() {
    rh_status >/dev/null 2>&1
}

case "$1" in
    start)
        rh_status_q && exit 0
        $1
        ;;
    stop)
        rh_status_q || exit 0
        $1
        ;;
    restart)
        $1
        ;;
    reload)
        rh_status_q || exit 7
        $1
        ;;
    force-reload)
        force_reload
        ;;
    status)
        rh_status
        ;;
    condrestart|try-restart)
        rh_status_q || exit 0
        restart
        ;;
    *)
        echo $"Usage: $0 {start|stop|status|restart|condrestart|try-restart|reload|force-reload}"
        exit 2
esac

exit $?
LABCTL_ERA_END
    ;;
    upstart) cat <<'LABCTL_ERA_END'
description "Docker daemon"

start on (local-filesystems and net-device-up IFACE!=lo)
stop on runlevel [!2345]
limit nofile 524288 1048576
limit nproc 524288 1048576

respawn

pre-start script
	# see also https://github.com/tianon/cgroupfs-mount/blob/master/cgroupfs-mount
	if grep -v '^#' /etc/fstab | grep -q cgroup \
		|| [ ! -e /proc/cgroups ] \
		|| [ ! -d /sys/fs/cgroup ]; then
		exit 0
	fi
	if ! mountpoint -q /sys/fs/cgroup; then
		mount -t tmpfs -o uid=0,gid=0,mode=0755 cgroup /sys/fs/cgroup
	fi
	(
		cd /sys/fs/cgroup
		for sys in $(awk '!/^#/ { if ($4 == 1) print $1 }' /proc/cgroups); do
			mkdir -p $sys
			if ! mountpoint -q $sys; then
				if ! mount -n -t cgroup -o $sys cgroup $sys; then
					rmdir $sys || true
				fi
			fi
		done
	)
end script

script
	# modify these in /etc/default/$UPSTART_JOB (/etc/default/docker)
	DOCKER=/usr/bin/$UPSTART_JOB
	DOCKER_OPTS=
	if [ -f /etc/default/$UPSTART_JOB ]; then
		. /etc/default/$UPSTART_JOB
	fi
	exec "$DOCKER" -d $DOCKER_OPTS
end script

# Don't emit "started" event until docker.sock is ready.
# See https://github.com/docker/docker/issues/6647
post-start script
	DOCKER_OPTS=
	if [ -f /etc/default/$UPSTART_JOB ]; then
		. /etc/default/$UPSTART_JOB
	fi
	if ! printf "%s" "$DOCKER_OPTS" | grep -qE -e '-H|--host'; then
		while ! [ -e /var/run/docker.sock ]; do
			initctl status $UPSTART_JOB | grep -q "stop/" && exit 1
			echo "Waiting for /var/run/docker.sock"
			sleep 0.1
		done
		echo "/var/run/docker.sock is up"
	fi
end script
LABCTL_ERA_END
    ;;
    systemd-centos) cat <<'LABCTL_ERA_END'
[Unit]
Description=Docker Application Container Engine
Documentation=http://docs.docker.com
After=network.target

[Service]
Type=notify
EnvironmentFile=-/etc/sysconfig/docker
EnvironmentFile=-/etc/sysconfig/docker-storage
EnvironmentFile=-/etc/sysconfig/docker-network
ExecStartPre=-/usr/bin/rm /var/lib/docker/linkgraph.db
ExecStart=/usr/bin/docker -d $OPTIONS \
          $DOCKER_STORAGE_OPTIONS \
          $DOCKER_NETWORK_OPTIONS \
          $ADD_REGISTRY \
          $BLOCK_REGISTRY \
          $INSECURE_REGISTRY
LimitNOFILE=1048576
LimitNPROC=1048576
LimitCORE=infinity
MountFlags=slave

[Install]
WantedBy=multi-user.target
LABCTL_ERA_END
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

# the era's init files run /usr/bin/docker (the packages put it there): the engine installed in
# $bindir is linked there; a packaged /usr/bin/docker (Debian's docker.io client) is diverted aside
era_binary() {
  [ "$bindir" = /usr/bin ] && return 0
  [ "$(readlink /usr/bin/docker 2>/dev/null)" = "$bindir/docker" ] && return 0
  if command -v dpkg-divert >/dev/null 2>&1 && [ -e /usr/bin/docker ] \
     && [ -z "$(dpkg-divert --listpackage /usr/bin/docker 2>/dev/null)" ] \
     && dpkg -S /usr/bin/docker >/dev/null 2>&1; then
    do_ dpkg-divert --quiet --local --rename --divert /usr/bin/docker.distrib --add /usr/bin/docker \
      || die "cannot divert the packaged /usr/bin/docker"
    changed "diverted the packaged /usr/bin/docker to /usr/bin/docker.distrib"
  fi
  do_ ln -sfn "$bindir/docker" /usr/bin/docker || die "cannot link /usr/bin/docker to $bindir/docker"
  changed "linked /usr/bin/docker to $bindir/docker (the era's init files run that path)"
  units_changed=1
}

# what systemd-sysv-generator makes of /etc/init.d/docker on this host, word for word, but run by
# bash: on CentOS /bin/sh is bash, and the Red Hat scripts need it ([[ ]], &>>)
sysv_wrapper_unit() {
  drop_upstream_units
  printf '%s\n' "# labctl: what systemd-sysv-generator makes of /etc/init.d/docker (run by bash, CentOS's /bin/sh)" \
    '[Unit]' 'Documentation=man:systemd-sysv-generator(8)' 'SourcePath=/etc/init.d/docker' \
    'Description=LSB: start and stop docker' 'After=network-online.target' 'Wants=network-online.target' '' \
    '[Service]' 'Type=forking' 'Restart=no' 'TimeoutSec=5min' 'IgnoreSIGPIPE=no' 'KillMode=process' \
    'GuessMainPID=no' 'RemainAfterExit=yes' 'SuccessExitStatus=5 6' \
    'ExecStart=/bin/bash /etc/init.d/docker start' 'ExecStop=/bin/bash /etc/init.d/docker stop' '' \
    '[Install]' 'WantedBy=multi-user.target' | unit_file docker.service
}

write_sysvinit() {  # write_sysvinit sysvinit-epel|sysvinit-docker
  [ -f /etc/rc.d/init.d/functions ] || die "no /etc/rc.d/init.d/functions (Red Hat's initscripts) on this host: the $1 script sources it (the docker_engine role installs CentOS 6.6's copy where modules run)"
  era_binary
  era_text "$1" | put_file /etc/init.d/docker 0755 && units_changed=1
  [ -f /etc/sysconfig/docker ] || printf '# /etc/sysconfig/docker (read by /etc/init.d/docker)\nother_args=\n' | put_file /etc/sysconfig/docker 0644
  ns="the host's mount namespace"
  era_text "$1" | grep -q '"$unshare" -m' && ns="a private mount namespace (unshare -m)"
  if [ "$pid1_systemd" = 1 ]; then
    sysv_wrapper_unit && units_changed=1
    echo "STYLE: $1, /etc/init.d/docker as it shipped, run by a docker.service that systemd-sysv-generator would make (PID 1 is systemd; the daemon gets $ns)"
  else
    echo "STYLE: $1, /etc/init.d/docker as it shipped (the daemon gets $ns)"
  fi
}

write_systemd_centos() {
  drop_upstream_units
  era_binary
  era_text systemd-centos | unit_file docker.service && units_changed=1
  echo "STYLE: systemd-centos, CentOS 7's docker-1.5.0-11 docker.service as it shipped (MountFlags=$(era_text systemd-centos | sed -n 's/^MountFlags=//p'))"
}

# one section of the upstart job, as upstart runs it (sh -e)
job_section() {  # job_section script|pre-start|post-start
  era_text upstart | awk -v want="$1" '
    $0 == (want == "script" ? "script" : want " script") { on = 1; next }
    on && $0 == "end script" { exit }
    on { print }'
}

write_upstart() {
  era_binary
  era_text upstart | put_file /etc/init/docker.conf 0644 && units_changed=1
  [ -f /etc/default/docker ] || printf '# Docker options (read by /etc/init/docker.conf)\n#DOCKER_OPTS="--storage-driver=aufs"\n' | put_file /etc/default/docker 0644
  if [ "$has_upstart" = 1 ]; then
    echo "STYLE: upstart, Docker 1.5.0's /etc/init/docker.conf as it shipped"
    return 0
  fi
  [ "$pid1_systemd" = 1 ] || die "no upstart and no systemd on this host: cannot start the upstart job"
  # the job's own sections and stanzas, nothing else: its pre-start, script and post-start, run by
  # sh -e as upstart runs them, with UPSTART_JOB set, its limits and its respawn
  for part in pre-start script post-start; do
    job_section "$part" | put_file "/usr/lib/labctl/upstart/docker.$part" 0644 && units_changed=1
  done
  nofile=$(era_text upstart | awk '$1 == "limit" && $2 == "nofile" {print $3 ":" $4}')
  nproc=$(era_text upstart | awk '$1 == "limit" && $2 == "nproc" {print $3 ":" $4}')
  drop_upstream_units
  printf '%s\n' "# labctl: the upstart job /etc/init/docker.conf as upstart would run it (upstart cannot run here)" \
    '[Unit]' 'Description=Docker daemon (the upstart job /etc/init/docker.conf)' \
    'After=local-fs.target network-online.target' 'Wants=network-online.target' '' \
    '[Service]' 'Type=simple' 'Environment=UPSTART_JOB=docker' \
    'ExecStartPre=/bin/sh -e /usr/lib/labctl/upstart/docker.pre-start' \
    'ExecStart=/bin/sh -e /usr/lib/labctl/upstart/docker.script' \
    'ExecStartPost=/bin/sh -e /usr/lib/labctl/upstart/docker.post-start' \
    "LimitNOFILE=$nofile" "LimitNPROC=$nproc" 'Restart=always' 'KillMode=process' '' \
    '[Install]' 'WantedBy=multi-user.target' | unit_file docker.service && units_changed=1
  echo "NOTE: upstart cannot run on this host (PID 1 is systemd): docker.service runs the job's pre-start, script and post-start sections as upstart would (sh -e, UPSTART_JOB=docker, its limits and respawn); no private mount namespace, as under upstart"
  echo "STYLE: upstart, Docker 1.5.0's /etc/init/docker.conf run by a docker.service made of its own sections"
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
if [ -n "$print_era" ]; then
  era_text "$print_era" || die "labctl carries no era init file named $print_era"
  exit 0
fi
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
    systemd) [ "$pid1_systemd" = 1 ] || die "PID 1 is not systemd here; choose docker_engine_service_manager=sysvinit-epel or upstart"
             write_systemd ;;
    systemd-centos) [ "$pid1_systemd" = 1 ] || die "PID 1 is not systemd here; choose docker_engine_service_manager=sysvinit-epel or upstart"
             write_systemd_centos ;;
    sysvinit|sysvinit-epel) write_sysvinit sysvinit-epel ;;
    sysvinit-docker) write_sysvinit sysvinit-docker ;;
    upstart) write_upstart ;;
    labctl) echo "STYLE: labctl container lab host (labctl-dockerd)" ;;
    *) die "unknown service manager $service (systemd | systemd-centos | sysvinit-epel | sysvinit-docker | upstart | labctl)" ;;
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
