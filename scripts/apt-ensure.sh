#!/usr/bin/env bash
# Installs the Debian packages a step needs, then checks that the commands
# the step runs exist (apt, with sudo when not root).
#
#   apt-ensure.sh PACKAGE[:COMMAND[,COMMAND...]]...
#
# PACKAGE is NAME, NAME=VERSION, or NAME=@OTHER: the version apt installs
# for package OTHER, for binary packages of one source that must match
# (qemu-utils=@qemu-system-arm). Each COMMAND is looked up in PATH (with the
# sbin folders) or is an absolute path; a missing one fails the step with
# its name and its package's.
#
# Every package goes into ONE `apt-get install`, whether or not dpkg says it
# is installed: apt then resolves the step's whole set at once. Skipping the
# installed ones hid a removal on a fresh machine: a backported qemu-utils
# was "installed", so only qemu-system-arm was asked for, and apt removed
# qemu-utils (it Breaks the older qemu-system-common) to install it:
# qemu-img vanished. Asked for together at one version, apt downgrades
# qemu-utils instead. When everything is there the install changes nothing
# and takes a second or two. `apt-get update` runs only when needed: when
# there are no package lists yet, a NAME=@OTHER has no candidate, or the
# install fails (stale lists: a package unknown, a file gone from the
# mirror); then the install is tried once more.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
die() {
  echo "apt-ensure: $*" >&2
  exit 1
}

specs=() # NAME, NAME=VERSION or NAME=@OTHER
commands=() # "COMMAND PACKAGE"
for arg in "$@"; do
  spec=${arg%%:*}
  [ -n "$spec" ] || die "empty package in '$arg'"
  specs+=("$spec")
  if [[ "$arg" == *:* ]]; then
    IFS=, read -ra cmds <<<"${arg#*:}"
    for c in "${cmds[@]}"; do commands+=("$c ${spec%%=*}"); done
  fi
done
((${#specs[@]})) || die "no package named"

updated=""
update() {
  echo "apt-ensure: apt-get update"
  $sudo apt-get update -qq -o DPkg::Lock::Timeout=600 || die "apt-get update failed"
  updated=1
}

candidate() { # package: the version apt would install, empty if none
  apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -vx '(none)' || true
}

# The arguments of apt-get install: NAME=@OTHER resolved.
resolved=()
resolve() {
  resolved=()
  local spec name version
  for spec in "${specs[@]}"; do
    if [[ "$spec" == *=@* ]]; then
      name=${spec%%=*}
      version=$(candidate "${spec#*=@}")
      [ -n "$version" ] || return 1
      resolved+=("$name=$version")
    else
      resolved+=("$spec")
    fi
  done
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
install() {
  resolve || {
    [ -z "$updated" ] || die "no installable version of ${specs[*]}"
    return 1
  }
  # --allow-downgrades: only a NAME=VERSION asks for one.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    --allow-downgrades -o DPkg::Lock::Timeout=600 "${resolved[@]}" >"$log" 2>&1
}

lists=""
eval "$(apt-config shell lists Dir::State::lists/d)"
if ! compgen -G "${lists:-/var/lib/apt/lists}/*_Packages*" >/dev/null; then update; fi
if ! install; then
  if [ -n "$updated" ]; then
    cat "$log" >&2
    die "apt-get install ${resolved[*]} failed"
  fi
  update
  install || {
    cat "$log" >&2
    die "apt-get install ${resolved[*]} failed"
  }
fi
# What changed, if anything (apt's own lines).
grep -E '^(Setting up|Removing) ' "$log" | sed 's/^/apt-ensure: /' || true

missing=()
for entry in "${commands[@]}"; do
  c=${entry%% *}
  if ! PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$c" >/dev/null; then
    missing+=("$c (package ${entry#* }: $(dpkg-query -W -f='${Version} ${db:Status-Abbrev}' "${entry#* }" 2>/dev/null || echo 'not installed'))")
  fi
done
((${#missing[@]} == 0)) || die "after apt-get install, still missing: ${missing[*]}"
