#!/usr/bin/env bash
# Tests of scripts/apt-ensure.sh against stand-ins for apt-get, apt-cache,
# apt-config, dpkg-query and sudo (nothing is installed): one install
# transaction naming every package even when dpkg says they are all there,
# apt-get update only when needed, NAME=@OTHER, and a clear failure when a
# command is still missing. `make script-test`; .ci/run runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

boxes=()
trap 'rm -rf "${boxes[@]}"' EXIT
# A fresh sandbox: $stubs first in PATH, apt's calls logged in $calls.
# STUB_LISTS=0: no package lists yet; STUB_STALE=1: the install fails until
# an update; STUB_PROVIDES="pkg=cmd ...": the commands an install creates.
sandbox() {
  box=$(mktemp -d)
  boxes+=("$box")
  stubs="$box/bin"
  calls="$box/calls"
  mkdir -p "$stubs" "$box/lists" "$box/installed"
  : >"$calls"
  if [ "${STUB_LISTS:-1}" = 1 ]; then touch "$box/lists/deb.debian.org_dists_bookworm_main_binary-amd64_Packages"; fi
  cat >"$stubs/apt-get" <<'EOF'
#!/usr/bin/env bash
echo "apt-get $*" >>"$BOX/calls"
for a in "$@"; do
  case "$a" in
  update) touch "$BOX/updated" "$BOX/lists/x_Packages"; exit 0 ;;
  install) if [ "${STUB_STALE:-0}" = 1 ] && [ ! -e "$BOX/updated" ]; then echo "E: 404 Not Found"; exit 100; fi ;;
  esac
done
for pair in ${STUB_PROVIDES:-}; do
  for a in "$@"; do
    if [ "${a%%=*}" = "${pair%%=*}" ]; then
      printf '#!/bin/sh\n' >"$BOX/installed/${pair#*=}"
      chmod +x "$BOX/installed/${pair#*=}"
      echo "Setting up ${pair%%=*} (1.0) ..."
    fi
  done
done
EOF
  cat >"$stubs/apt-cache" <<'EOF'
#!/usr/bin/env bash
[ -e "$BOX/updated" ] || [ "${STUB_LISTS:-1}" = 1 ] || { echo "  Candidate: (none)"; exit 0; }
echo "$2:"; echo "  Installed: (none)"; echo "  Candidate: 1:7.2+dfsg-7+deb12u18+b3"
EOF
  cat >"$stubs/apt-config" <<'EOF'
#!/usr/bin/env bash
echo "lists='$BOX/lists/'"
EOF
  cat >"$stubs/dpkg-query" <<'EOF'
#!/usr/bin/env bash
# dpkg says every package is installed (the case that hid the removal)
case "$*" in *Status-Abbrev*) echo "1.0 ii " ;; *) echo "install ok installed" ;; esac
EOF
  printf '#!/bin/sh\nexec "$@"\n' >"$stubs/sudo"
  chmod +x "$stubs"/*
}
run() { # expected status, args...
  local want=$1
  shift
  set +e
  BOX=$box PATH="$stubs:$box/installed:/usr/bin:/bin" "$here/apt-ensure.sh" "$@" >"$box/out" 2>&1
  status=$?
  set -e
  [ "$status" = "$want" ] || {
    cat "$box/out" >&2
    return 1
  }
}
installs() { grep -c ' install ' "$calls" || true; }
updates() { grep -c ' update' "$calls" || true; }

sandbox
if run 0 mmdebstrap arch-test qemu-utils && [ "$(installs)" = 1 ] && [ "$(updates)" = 0 ] &&
  grep -q 'install .* mmdebstrap arch-test qemu-utils$' "$calls"; then
  pass "every package in one apt-get install though dpkg says all are installed; no update with lists"
else fail "one install of every package, no update: $(cat "$calls")"; fi

STUB_LISTS=0 sandbox
if STUB_LISTS=0 run 0 jq && [ "$(sed -n 1p "$calls")" = "apt-get update -qq -o DPkg::Lock::Timeout=600" ] &&
  [ "$(installs)" = 1 ]; then
  pass "no package lists: apt-get update first, then the install"
else fail "no lists: $(cat "$calls")"; fi

sandbox
if STUB_STALE=1 run 0 jq && [ "$(installs)" = 2 ] && [ "$(updates)" = 1 ]; then
  pass "an install that fails on stale lists: update, then the install once more"
else fail "stale lists: $(cat "$calls")"; fi

sandbox
if run 0 qemu-system-arm qemu-utils=@qemu-system-arm &&
  grep -q 'install .*--allow-downgrades.* qemu-system-arm qemu-utils=1:7.2+dfsg-7+deb12u18+b3$' "$calls"; then
  pass "qemu-utils=@qemu-system-arm: installed at qemu-system-arm's candidate version"
else fail "NAME=@OTHER: $(cat "$calls")"; fi

# (made-up command names: the real ones may be on this machine)
provides="phare-utils=phare-img phare-strap=phare-strap"
sandbox
if STUB_PROVIDES=$provides run 0 phare-strap:phare-strap phare-utils:phare-img,phare-io 2>/dev/null; then
  fail "a missing command passed"
elif STUB_PROVIDES=$provides run 1 phare-strap:phare-strap phare-utils:phare-img,phare-io &&
  grep -q 'still missing: phare-io (package phare-utils' "$box/out" && ! grep -q 'missing:.*phare-strap' "$box/out"; then
  pass "a command still missing after the install fails the step, named with its package"
else fail "missing command: $(cat "$box/out")"; fi

sandbox
if STUB_PROVIDES=$provides run 0 phare-utils:phare-img && grep -q 'Setting up phare-utils' "$box/out"; then
  pass "every command there: passes, says what apt set up"
else fail "commands present: $(cat "$box/out")"; fi

echo "apt-ensure: $((6 - failures)) passed, $failures failed"
[ "$failures" = 0 ]
