#!/usr/bin/env bash
# `make deb`: the Debian packages phare-player and phare, for amd64 (this
# machine) and arm64 (cross-built: Raspberry Pi 4 and 5), in target/debian/.
#
# Installs what it needs first: the build packages (scripts/install-deps.sh),
# the arm64 cross toolchain, mmdebstrap and qemu-user-static (apt, with sudo
# when not root; scripts/apt-ensure.sh checks the commands), the Rust target
# and cargo-deb (skipped when there). The arm64 GStreamer development files do not co-install with
# the amd64 ones through multiarch, so they come in a sysroot unpacked by
# mmdebstrap from this machine's Debian mirror, cached under
# ~/.cache/phare/ (keyed by its package list).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

arm_target=aarch64-unknown-linux-gnu
suite=bookworm # Debian 12 and Raspberry Pi OS (bookworm)
packages=(phare-player phare-provisioning)
cargo_packages=(-p phare-player -p phare-provisioning)

if [ "$(uname -m)" != x86_64 ]; then
  echo "make deb builds on an x86_64 Debian machine (this is $(uname -m))" >&2
  exit 1
fi
step() { printf '\n== %s\n' "$*"; }

step "build dependencies"
scripts/install-deps.sh
# arch-test: mmdebstrap needs it for a foreign architecture (a Recommends,
# which apt-ensure does not install).
tools=(gcc-aarch64-linux-gnu:aarch64-linux-gnu-gcc,aarch64-linux-gnu-ar libc6-dev-arm64-cross
  mmdebstrap:mmdebstrap arch-test:arch-test dpkg-dev:dpkg-shlibdeps file:file
  qemu-user-static:qemu-aarch64-static)
scripts/apt-ensure.sh "${tools[@]}"
if ! rustup target list --installed | grep -qx "$arm_target"; then
  rustup target add "$arm_target"
fi
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
  echo "installing cargo-deb (crates.io)"
  cargo install --locked cargo-deb --version '^3'
fi

step "arm64 sysroot"
# What the arm64 link needs: libc and the GStreamer libraries the crates
# bind (core, base, app, video, audio), with their pkg-config files.
sysroot_packages=(libc6-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/phare"
key=$(printf '%s\n' "$suite" arm64 "${sysroot_packages[@]}" | sha256sum | cut -c1-12)
sysroot="$cache/sysroot-arm64-$key"
if [ ! -e "$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig/gstreamer-video-1.0.pc" ]; then
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.sysroot.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  scripts/debian-sources.sh "$suite" >"$work/sources.list"
  include=$(
    IFS=,
    echo "${sysroot_packages[*]}"
  )
  # "extract" unpacks the packages and their dependencies, runs nothing:
  # no arm64 code runs on this machine.
  mmdebstrap --quiet --variant=extract --architectures=arm64 --include="$include" \
    "$suite" "$work/sysroot.tar" "$work/sources.list"
  mkdir "$work/root"
  tar -C "$work/root" --exclude=./dev --no-same-owner -xf "$work/sysroot.tar"
  rm -rf "$sysroot"
  mv "$work/root" "$sysroot"
  rm -rf "$work"
  trap - EXIT
fi
echo "$sysroot"

# amd64 builds into target/release, where `make release-bins` builds too.
step "release binaries: amd64"
cargo build --release "${cargo_packages[@]}" --bins

step "release binaries: $arm_target (cross)"
arm_env=(
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS=-C link-arg=--sysroot=$sysroot"
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  PKG_CONFIG_ALLOW_CROSS=1
  PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=
  "PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig"
  "PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu=$sysroot"
)
env "${arm_env[@]}" cargo build --release --target "$arm_target" "${cargo_packages[@]}" --bins

step "packages"
debs=()
for package in "${packages[@]}"; do
  debs+=("$(cargo deb --no-build -p "$package" | tail -n 1)")
  debs+=("$(cargo deb --quiet --no-build --target "$arm_target" -p "$package" | tail -n 1)")
done

# cargo-deb reads the shared-library dependencies ($auto) with
# dpkg-shlibdeps, which cannot see the sysroot's arm64 libraries (hence
# --quiet above: it warns about it). So dpkg-shlibdeps runs here on each
# arm64 binary, finding the libraries in the sysroot and what package
# provides them in this machine's shlibs files: the same Debian release,
# the same package names.
shlibs=$(mktemp -d)
mkdir "$shlibs/debian"
touch "$shlibs/debian/control"
# (not the cross toolchain's *-arm64-cross ones: they are no Debian arm64 packages)
for f in /var/lib/dpkg/info/*.shlibs; do
  case "$f" in *-cross.shlibs) ;; *) cat "$f" ;; esac
done >"$shlibs/debian/shlibs.local"
for deb in "${debs[@]}"; do
  case "$deb" in *_arm64.deb) ;; *) continue ;; esac
  bin=$(dpkg-deb -c "$deb" | sed -n 's|.* \./usr/bin/\(..*\)|\1|p')
  auto=$(cd "$shlibs" && DEB_HOST_ARCH=arm64 dpkg-shlibdeps -O -xlibgcc \
    -l"$sysroot/usr/lib/aarch64-linux-gnu" -l"$sysroot/lib/aarch64-linux-gnu" \
    "$repo/target/$arm_target/release/$bin" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
  [ -n "$auto" ] || { echo "dpkg-shlibdeps found nothing for arm64 $bin" >&2; exit 1; }
  depends=$({ dpkg-deb -f "$deb" Depends; echo "$auto"; } | tr ',' '\n' |
    sed 's/^ *//; s/ *$//; s/:arm64//' | grep -v '^$' | sort -u | paste -sd, | sed 's/,/, /g')
  unpacked=$(mktemp -d)
  chmod 0755 "$unpacked" # the package's ./, as cargo-deb makes it
  dpkg-deb -R "$deb" "$unpacked"
  control="$unpacked/DEBIAN/control"
  if grep -q '^Depends:' "$control"; then
    sed -i "s/^Depends: .*/Depends: $depends/" "$control"
  else
    sed -i "/^Architecture:/a Depends: $depends" "$control"
  fi
  dpkg-deb --root-owner-group -Zxz -b "$unpacked" "$deb" >/dev/null
  rm -rf "$unpacked"
done
rm -rf "$shlibs"

step "checks"
for bin in phare-player phare; do
  file -b "target/$arm_target/release/$bin" | grep -q 'ELF 64-bit LSB .*ARM aarch64' || {
    echo "target/$arm_target/release/$bin is not an arm64 ELF binary" >&2
    exit 1
  }
  # The arm64 binary runs here under user-mode emulation, with the sysroot's
  # libraries (GStreamer included).
  echo "arm64 $bin: $(qemu-aarch64-static -L "$sysroot" "target/$arm_target/release/$bin" --version)"
done
for deb in "${debs[@]}"; do
  dpkg-deb -f "$deb" Package Version Architecture | paste -sd' '
done

step "done"
ls -l "${debs[@]}"
