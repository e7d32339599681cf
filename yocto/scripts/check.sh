#!/usr/bin/env bash
# Offline checks of the Yocto layer (make yocto-check). A real bitbake build
# needs the network and hours; this checks what can be checked without them:
#   1. phare-player-crates.inc is in sync with Cargo.lock
#   2. oelint-adv finds nothing in meta-phare
#   3. BitBake's own parser parses the layer, the distro and the recipes,
#      and the expanded values agree with the source tree
#   4. the kas files validate against kas's schema and load with kas, and
#      every remote layer is pinned to a full commit on a named branch
#      (kas-pins: that check's own tests, an unpinned layer must fail it)
# Python, its venv module and git come from apt (scripts/apt-ensure.sh); the
# tools (requirements.txt, pinned) go into a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/phare/, made once and reused while
# requirements.txt does not change. Exits non-zero if any check fails.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# python3-venv: Debian's python3 has no ensurepip without it; git: kas's
# loader runs it; ca-certificates: pip fetches over HTTPS.
"$root/scripts/apt-ensure.sh" python3:python3 python3-venv git:git ca-certificates || exit 2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/phare"
venv="$cache/yocto-venv"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "yocto-check: needs Python 3.11 or later ($python)" >&2
    exit 2
fi
if ! command -v git >/dev/null; then
    echo "yocto-check: needs git" >&2
    exit 2
fi

# The virtualenv, remade when requirements.txt or the Python version changes.
stamp="$(cat "$here/requirements.txt" <("$python" -VV) | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/.phare-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "yocto-check: installing the tools into $venv"
    rm -rf "$venv"
    mkdir -p "$cache"
    if ! "$python" -m venv "$venv" ||
       ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
             --no-input -r "$here/requirements.txt"; then
        echo "yocto-check: could not install the tools" >&2
        rm -rf "$venv"
        exit 2
    fi
    echo "$stamp" > "$venv/.phare-stamp"
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0
summary=()

step() {
    local name="$1"; shift
    local log="$logs/$name.log" start ms rc secs
    start=$(date +%s%N)
    "$@" >"$log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        summary+=("  ok    $name (${secs}s)")
    else
        failed=$((failed + 1))
        summary+=("  FAIL  $name (${secs}s)")
        echo "---- $name failed (exit $rc):"
        cat "$log"
        echo "----"
    fi
}

oelint() {
    cd "$root/yocto/meta-phare" &&
    "$venv/bin/oelint-adv" --quiet --relpaths --jobs 1 \
        conf/layer.conf conf/distro/*.conf recipes-*/*/*.bb &&
    echo "oelint-adv: no findings"
}

step crates-inc  "$python" "$here/gen-crates-inc.py" --check
step oelint-adv  oelint
step bitbake-parse "$venv/bin/python" "$here/check_bitbake.py"
step kas-schema  "$venv/bin/python" "$here/check_kas.py"
step kas-pins    "$venv/bin/python" "$here/test_check_kas.py"

echo "yocto-check:"
printf '%s\n' "${summary[@]}"
grep -h 'WARN' "$logs"/*.log | sort -u || true
echo "yocto-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
