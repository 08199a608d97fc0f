#!/bin/sh
# Print "path version" of the best Python on this host, or "none". Runs through `raw`, so it
# needs nothing but a POSIX shell (CentOS 6's, Ubuntu 14.04's, busybox's).
for p in python3 /usr/libexec/platform-python python2.7 python2 python2.6 python; do
  path=$(command -v "$p" 2>/dev/null) || continue
  ver=$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  echo "$path $ver"
  exit 0
done
echo "none"
