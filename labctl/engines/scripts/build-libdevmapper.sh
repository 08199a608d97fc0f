#!/bin/sh
# Build a static libdevmapper.a from Debian's lvm2 source package into /usr/local (Debian ships
# only the shared library; a static docker binary needs the archive). Runs once, in the build
# image's tree, with the network (apt-get source).
set -eu
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
apt-get update -q
mkdir -p /usr/local/src/lvm2
cd /usr/local/src/lvm2
apt-get source -q --only-source lvm2
cd lvm2-*/
./configure --prefix=/usr/local --enable-static_link --disable-udev_sync --disable-selinux \
    --disable-readline --disable-blkid_wiping --disable-systemd-journal --disable-app-machineid
make -j"$(nproc)" device-mapper
make install_device-mapper
cd /
(cd /usr/local/src/lvm2 && ls *.dsc) > /usr/local/share/labctl-lvm2-source.txt
rm -rf /usr/local/src/lvm2 /var/lib/apt/lists/* /var/cache/apt/*.bin
test -f /usr/local/lib/libdevmapper.a
