#!/usr/bin/env bash
# `make ci-fresh`: runs .ci/run on a clean clone of HEAD inside a clean
# Debian bookworm chroot (mmdebstrap, variant minbase: the essential and
# required packages, nothing else) that holds nothing but this machine's
# Rust toolchain, so every package a step needs must be installed by the
# step itself (scripts/apt-ensure.sh). Nothing is cached: no apt lists, no
# crates, no ~/.cache/phare.
#
#   scripts/ci-fresh.sh [COMMAND...]    (default: bash .ci/run)
#
# What the chroot gets, and why:
# - the Rust toolchain: ~/.rustup as an overlay (read from the host, written
#   to a throw-away layer: `make deb` adds the arm64 target) and the rustup
#   proxies of ~/.cargo/bin; a CARGO_HOME of its own (the registry is
#   fetched afresh);
# - the machine's network configuration, as any machine has:
#   /etc/resolv.conf, /etc/hosts and the local certificate authorities of
#   /usr/local/share/ca-certificates;
# - /usr/sbin/policy-rc.d refusing to start services, as in any chroot:
#   installing mosquitto must not leave a daemon on the host's port 1883;
# - in a private mount namespace (gone with the run): the chroot bound on
#   itself (systemd-nspawn needs / to be a mount point), /proc, /sys (rbind:
#   systemd-nspawn in `make deb-test` needs the cgroup hierarchies), /dev
#   (rbind: /dev/pts, /dev/shm, /dev/kvm if any), a fresh tmpfs /run.
#   `make image` registers the qemu-aarch64 binfmt handler with the
#   kernel, which is global: it stays registered after the run.
#
# The log and the wall time go to target/ci-fresh/ (ci-<date>.log and
# .result). The
# chroot (under /var/tmp) is deleted afterwards unless
# PHARE_CI_FRESH_KEEP=1; PHARE_CI_FRESH_DIR=<dir> reuses a kept one
# (another COMMAND in it, e.g. one step of .ci/run again).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PHARE_CI_FRESH_KEEP,PHARE_CI_FRESH_DIR \
    RUSTUP_HOME="$rustup_home" CARGO_HOME="$cargo_home" "$0" "$@"
fi
suite=bookworm
out="$repo/target/ci-fresh"
log="$out/ci-$(date +%F-%H%M%S).log"
command=("$@")
((${#command[@]})) || command=(bash .ci/run)

say() { printf '[ci-fresh] %s\n' "$*" | tee -a "$log" >&2; }
die() {
  say "error: $*"
  exit 1
}
mkdir -p "$out"
: >"$log"

[ -x "$cargo_home/bin/cargo" ] && [ -d "$rustup_home/toolchains" ] ||
  die "no Rust toolchain at $cargo_home/bin and $rustup_home (set CARGO_HOME, RUSTUP_HOME)"
"$repo/scripts/apt-ensure.sh" mmdebstrap:mmdebstrap git:git util-linux:unshare,chroot >>"$log" 2>&1 ||
  die "could not install mmdebstrap and git here ($log)"

work=${PHARE_CI_FRESH_DIR:-}
reuse=""
if [ -n "$work" ] && [ -d "$work/root/root/phare" ]; then
  reuse=1
else
  work=$(mktemp -d /var/tmp/phare-ci-fresh.XXXXXX)
fi
root="$work/root"

# Processes still running from the chroot when the run ends (a daemon a
# step left behind): ours, stopped by their id.
stragglers() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  local pids
  pids=$(stragglers)
  if [ -n "$pids" ]; then
    say "stopping what the run left running in the chroot: $(echo $pids)"
    kill $pids 2>/dev/null || true
    sleep 2
    kill -KILL $(stragglers) 2>/dev/null || true
  fi
  if [ "${PHARE_CI_FRESH_KEEP:-0}" = 1 ]; then
    say "kept: $work (PHARE_CI_FRESH_DIR=$work scripts/ci-fresh.sh COMMAND... runs in it again)"
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT

if [ -z "$reuse" ]; then
  say "the chroot: Debian $suite, variant minbase, from this machine's mirror"
  "$repo/scripts/debian-sources.sh" "$suite" >"$work/sources.list"
  mmdebstrap --quiet --variant=minbase --mode=root "$suite" "$root" "$work/sources.list" >>"$log" 2>&1 ||
    die "mmdebstrap failed ($log)"
  cp /etc/resolv.conf /etc/hosts "$root/etc/"
  # The certificate authorities this machine's administrator added (a
  # TLS-inspecting egress proxy, say): ca-certificates, once a step
  # installs it, adds them to the chroot's bundle.
  if [ -d /usr/local/share/ca-certificates ]; then
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  printf '#!/bin/sh\n# ci-fresh: no service starts in this chroot\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"

  head=$(git -C "$repo" rev-parse HEAD)
  if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    say "warning: uncommitted changes in $repo are not in the clone (HEAD $head)"
  fi
  git clone --quiet --no-local --no-checkout "$repo" "$root/root/phare"
  git -C "$root/root/phare" checkout --quiet --detach "$head"
  say "clean clone of $head ($(git -C "$repo" log -1 --format=%s "$head" | cut -c1-60))"

  mkdir -p "$root/root/.rustup" "$root/root/.cargo" "$work/rustup.upper" "$work/rustup.work"
  cp -a "$cargo_home/bin" "$root/root/.cargo/"
fi

say "running: ${command[*]} (log: $log)"
start=$(date +%s)
set +e
unshare --mount --propagation private env ROOT="$root" WORK="$work" RUSTUP_LOWER="$rustup_home" \
  bash -euo pipefail -c '
    mount --bind "$ROOT" "$ROOT"
    mount -t overlay overlay -o "lowerdir=$RUSTUP_LOWER,upperdir=$WORK/rustup.upper,workdir=$WORK/rustup.work" \
      "$ROOT/root/.rustup"
    mount -t proc proc "$ROOT/proc"
    mount --rbind /sys "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"
    exec chroot "$ROOT" env -i HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb \
      PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      bash -c "cd /root/phare && exec \"\$@\"" ci "$@" </dev/null' ci "${command[@]}" >>"$log" 2>&1
status=$?
set -e
secs=$(($(date +%s) - start))
result="${command[*]}: exit $status after $((secs / 60)) min $((secs % 60)) s (wall time), $(nproc) cores"
echo "$result" >"${log%.log}.result"
say "$result"
grep -E '^(== |make(\[[0-9]+\])?: |test result: |deb-test: |yocto-check: |\[image\] built|\[boot-test\] passed|FAIL)' "$log" |
  tail -n 40 >&2 || true
exit "$status"
