#!/bin/sh
# Install and start a Docker engine without Python on the host (Ansible `script` path). A binary
# engine is only installed here: docker_service.sh writes its init files and starts it.
# Plain POSIX sh: runs on CentOS 6.6, CentOS 7, Ubuntu 14.04 and today's distributions.
# Prints "CHANGED: ..." for every change (Ansible's changed_when reads it); with --check it
# only says what it would do.
set -u
method=distro version="" service=sysvinit debpkg=docker.io rhpkg=docker rhurl="" url="" file=""
sha="" bindir=/usr/local/bin check=0
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
    --check) check=1 ;;
    *) echo "ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PATH=$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
stage=/var/cache/labctl-docker
restart=0

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

install_binary() {
  mkdir -p "$stage" || die "cannot create $stage"
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
    mv -f "$file" "$art"
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
  # the init files and the start are docker_service.sh's job (the module path runs it too)
}

answers() { docker version 2>/dev/null | grep -qiE '^Server|^ *Engine'; }

start_engine() {
  if answers && [ "$restart" = 0 ]; then return 0; fi
  case "$service" in
    labctl)
      if [ "$restart" = 1 ]; then do_ /usr/local/sbin/labctl-dockerd stop >/dev/null; fi
      do_ /usr/local/sbin/labctl-dockerd start >/dev/null || die "labctl-dockerd start failed (see /var/log/dockerd.log)" ;;
    systemd)
      do_ systemctl enable docker >/dev/null 2>&1
      if [ "$restart" = 1 ]; then do_ systemctl restart docker; else do_ systemctl start docker; fi || die "systemctl start docker failed (journalctl -u docker)" ;;
    upstart)
      if [ "$restart" = 1 ]; then do_ stop docker >/dev/null 2>&1; fi
      do_ start docker || die "start docker failed (see /var/log/upstart/docker.log)" ;;
    *)
      if command -v chkconfig >/dev/null 2>&1; then do_ chkconfig docker on; elif command -v update-rc.d >/dev/null 2>&1; then do_ update-rc.d docker defaults >/dev/null 2>&1; fi
      if [ "$restart" = 1 ]; then do_ service docker restart; else do_ service docker start; fi || die "service docker start failed (see /var/log/docker.log)" ;;
  esac
  changed "started the engine ($service)"
}

case "$method" in
  distro) install_distro ;;
  binary) [ -n "$sha" ] || die "the binary method needs docker_engine_binary_sha256"
          install_binary; exit 0 ;;
  *) die "docker_engine_method must be distro or binary, not $method" ;;
esac
start_engine
exit 0
