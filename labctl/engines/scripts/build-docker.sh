#!/bin/sh
# Build a static Docker binary (its own dockerinit) the way hack/make/binary did, in a fixed
# GOPATH so the output does not depend on where labctl runs. Inputs (read-only):
#   /in/source.tar  the source archive (any top folder name)   /in/patches/  series + *.patch
# Settings (environment, from labctl/engines/build.py): GO_BUILDFLAGS, BUILDTAGS, GO_LDFLAGS,
# OWNER (uid:gid for /out). Output: /out/docker and /out/buildinfo (key=value lines: toolchain
# versions and checks). No network is needed.
set -eu
export LC_ALL=C
TREE=/go/src/github.com/docker/docker
VENDOR=/go-vendor
mkdir -p "$TREE"
tar -xf /in/source.tar --no-same-owner --strip-components=1 -C "$TREE"
cd "$TREE"
if [ -f /in/patches/series ]; then
    grep -v '^[[:space:]]*\(#\|$\)' /in/patches/series | while read -r name _rest; do
        echo "applying $name"
        patch -p1 --no-backup-if-mismatch -s -i "/in/patches/$name"
    done
fi
# Go >= 1.6 treats any vendor/ folder as a vendor tree: the era's vendor/src is a GOPATH entry
mv vendor "$VENDOR"
export GOPATH="/go:$VENDOR" GO111MODULE=off CGO_ENABLED=1 GOFLAGS= GOCACHE=/tmp/gocache
export PATH="/usr/lib/go-1.19/bin:$PATH"
# shellcheck disable=SC2086 # GO_BUILDFLAGS is a word list
go build -o /out/docker $GO_BUILDFLAGS -tags "$BUILDTAGS" -ldflags "$GO_LDFLAGS" ./docker
{
    echo "go=$(go version)"
    echo "gcc=$(gcc --version | head -n1)"
    echo "libdevmapper=$(cat /usr/local/share/labctl-lvm2-source.txt 2>/dev/null || echo unknown)"
    echo "file=$(file -b /out/docker)"
    echo "version=$(/out/docker -v)"
} > /out/buildinfo
chown -R "${OWNER:-0:0}" /out
cat /out/buildinfo
