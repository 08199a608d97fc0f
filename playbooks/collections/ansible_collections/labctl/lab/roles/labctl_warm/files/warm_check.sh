# labctl's warm check (raw: no Python needed). Prints "warm: ..." when this host was provisioned
# with the same fingerprint and its engine answers with the asked version and storage driver,
# else "cold: why" (and forgets the old stamp unless KEEP is set, as in --check).
if [ ! -r "$STAMP" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$FP" ]; then
  why="not provisioned this way before"
else
  v=$(docker version 2>/dev/null | awk '/^Server version:/ {print $3; exit}
    /^Server/ {s=1} s && /Version:/ {print $NF; exit}')
  d=$(docker info 2>/dev/null | sed -n 's/^ *Storage Driver: *//p' | head -n 1)
  if [ -z "$v" ]; then
    why="the engine does not answer"
  elif [ -n "$WANT_VERSION" ] && [ "${v#"$WANT_VERSION"}" = "$v" ]; then
    why="the engine is $v, not $WANT_VERSION"
  elif [ -n "$WANT_DRIVER" ] && [ "$d" != "$WANT_DRIVER" ]; then
    why="the storage driver is $d, not $WANT_DRIVER"
  else
    echo "warm: Docker $v on $d, provisioned as asked"
    exit 0
  fi
fi
[ -n "$KEEP" ] || rm -f "$STAMP"
echo "cold: $why"
