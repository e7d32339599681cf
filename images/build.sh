#!/usr/bin/env bash
# Builds the Raspberry Pi 3/4 SD-card image (Debian bookworm arm64):
#   target/image/phare-raspi-arm64.img   the card: bootfs (FAT) | rootfs (ext4, ro) | data (ext4)
#   target/image/vmlinuz, initrd.img     the same kernel and initramfs, for QEMU (the boot test)
#
# Two stages:
#  1. the base: mmdebstrap of Debian with the kernel, firmware, systemd and
#     GStreamer, initramfs built once at the end. Slow under emulation, so it
#     is cached in ~/.cache/phare/image/, keyed by a hash of the package list,
#     the stage's recipe (this file's build_base and images/base/) and the
#     player package's dependencies.
#  2. the image: the cached base, the phare-player arm64 .deb (target/debian/,
#     from `make deb`), the files of images/rootfs/, then genimage. A minute.
#
# Needs root (uses sudo otherwise), qemu-user-static with binfmt_misc for
# arm64, and network access to the Debian mirror that apt already uses.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out="$repo/target/image"
image="$out/phare-raspi-arm64.img"
cache="${PHARE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phare/image}"

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  log "building an image needs root (chroot, device nodes): using sudo"
  exec sudo PHARE_IMAGE_CACHE="$cache" PHARE_IMAGE_OWNER="$(id -u):$(id -g)" "$0" "$@"
fi

# --- host tools ---------------------------------------------------------------

ensure_tools() {
  # arch-test: mmdebstrap needs it for a foreign architecture (a Recommends,
  # which apt-ensure does not install).
  local packages=(mmdebstrap:mmdebstrap arch-test:arch-test genimage:genimage
    qemu-user-static:qemu-aarch64-static dosfstools:mkfs.vfat mtools:mcopy
    e2fsprogs:mke2fs,mkfs.ext4 fdisk:sfdisk zstd:zstd)
  "$repo/scripts/apt-ensure.sh" "${packages[@]}"
  # Run arm64 programs (package scripts, update-initramfs) under qemu-user.
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    if command -v update-binfmts >/dev/null; then
      update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
    else
      # The F flag opens the interpreter now, so it works inside chroots.
      sed -n 's/^\(:qemu-aarch64:.*\)$/\1/p' /usr/lib/binfmt.d/qemu-aarch64.conf \
        > /proc/sys/fs/binfmt_misc/register
    fi
  fi
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "binfmt_misc has no enabled qemu-aarch64 handler"
}

# The Debian mirrors apt already uses (never a hard-coded host), as
# scripts/debian-sources.sh finds them, with the non-free-firmware component
# (raspi-firmware, firmware-brcm80211) next to main.
debian_sources() {
  "$repo/scripts/debian-sources.sh" bookworm | awk '{ print $1, $2, $3, "main non-free-firmware" }' | sort -u
}

# --- the player package -------------------------------------------------------

find_deb() {
  ls -t "$repo"/target/debian/phare-player_*_arm64.deb 2>/dev/null | head -1 || true
}

# Package names from a Depends field (versions dropped, first alternative).
deb_depends() {
  dpkg-deb -f "$1" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' \
    | tr -d ' ' | grep -v '^$' | sort -u
}

# --- stage 1: the cached base ---------------------------------------------------

# Everything Debian: mmdebstrap with update-initramfs diverted to a no-op while
# packages install (each kernel and firmware step would otherwise rebuild it
# under emulation), then one initramfs at the end, which raspi-firmware's hook
# copies to /boot/firmware with the kernel and device trees.
build_base() {
  local tarball=$1 base_dir=$2
  shift 2
  local include
  include=$(printf '%s,' "$@")
  local mirrors=()
  mapfile -t mirrors < <(debian_sources)
  mmdebstrap --arch=arm64 --variant=minbase --mode=root --format=tar \
    --include="${include%,}" \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs
      printf "#!/bin/sh\necho \"update-initramfs: deferred to the end of the image build\" >&2\n" \
        > "$1/usr/sbin/update-initramfs"
      chmod 755 "$1/usr/sbin/update-initramfs"' \
    --customize-hook="tar -C '$base_dir' --owner=root --group=root --mode=go-w -cf - . | tar -C \"\$1\" --no-overwrite-dir -xf -" \
    --customize-hook='rm "$1/usr/sbin/update-initramfs"
      chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
      chroot "$1" update-initramfs -c -k all' \
    --customize-hook='ls -l "$1/boot/firmware"; cat "$1/boot/firmware/config.txt" "$1/boot/firmware/cmdline.txt"' \
    bookworm "$tarball" "${mirrors[@]}"
}

# --- stage 2: the image ---------------------------------------------------------

work=""
# Unmounts what a build mounted in its chroot (also one that died earlier:
# never delete a tree with the host's /dev bound inside).
cleanup() {
  if [ -n "$work" ] && [ -d "$work/root" ]; then
    for m in dev/pts dev proc sys; do
      if mountpoint -q "$work/root/$m"; then umount -l "$work/root/$m"; fi
    done
  fi
  return 0
}
trap cleanup EXIT

in_root() { chroot "$work/root" "$@"; }

assemble() {
  local tarball=$1 deb=$2
  work="$out/work"
  cleanup
  rm -rf --one-file-system "$work"
  mkdir -p "$work/root" "$work/tmp"
  log "unpacking the base"
  tar -C "$work/root" --numeric-owner --xattrs --xattrs-include='*' -xf "$tarball"

  mount -t proc proc "$work/root/proc"
  mount -t sysfs sysfs "$work/root/sys"
  mount --bind /dev "$work/root/dev"
  mount --bind /dev/pts "$work/root/dev/pts"
  # No service starts inside the build.
  printf '#!/bin/sh\nexit 101\n' >"$work/root/usr/sbin/policy-rc.d"
  chmod 755 "$work/root/usr/sbin/policy-rc.d"

  if [ -n "$deb" ]; then
    log "installing $(basename "$deb")"
    cp "$deb" "$work/root/tmp/"
    # Its dependencies are in the base already: no network needed here.
    in_root env DEBIAN_FRONTEND=noninteractive dpkg -i "/tmp/$(basename "$deb")"
    rm "$work/root/tmp/$(basename "$deb")"
  fi

  log "configuring the system"
  # Owned by root whoever checked the files out; existing folders keep
  # their modes.
  tar -C "$here/rootfs" --owner=root --group=root --mode=go-w -cf - . \
    | tar -C "$work/root" --no-overwrite-dir -xf -
  in_root systemctl set-default multi-user.target
  in_root systemctl enable systemd-networkd.service systemd-resolved.service \
    systemd-timesyncd.service phare-bundle.service
  if [ -n "$deb" ]; then
    in_root systemctl enable phare-player.service
  fi
  # A read-only root: nothing that expects to write to it on a schedule.
  in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    e2scrub_reap.service 2>/dev/null || true
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$work/root/etc/resolv.conf"
  # Empty: systemd makes a fresh one at each boot (the root is read-only).
  : >"$work/root/etc/machine-id"
  ln -sf /etc/machine-id "$work/root/var/lib/dbus/machine-id"
  rm -f "$work/root/usr/sbin/policy-rc.d"
  cleanup
  rm -rf "$work/root/var/cache/apt/"*.bin "$work/root/var/lib/apt/lists/"* \
    "$work/root/var/log/"*.log "$work/root/tmp/"*

  # The kernel and initramfs for QEMU (the boot test); the Pi boots the
  # copies on the FAT partition.
  cp "$(ls "$work"/root/boot/vmlinuz-* | sort -V | tail -1)" "$work/vmlinuz"
  cp "$(ls "$work"/root/boot/initrd.img-* | sort -V | tail -1)" "$work/initrd.img"

  local uid gid
  uid=$(awk -F: '$1 == "phare" { print $3 }' "$work/root/etc/passwd")
  gid=$(awk -F: '$1 == "phare" { print $4 }' "$work/root/etc/passwd")
  mkdir -p "$work/root/var/lib/phare" "$work/root/boot/firmware/phare"
  cp "$here/bundle-README.txt" "$work/root/boot/firmware/phare/README.txt"

  # The root file system: what it holds, 15% and 128 MiB more (it is
  # mounted read-only; an upgrade remounts it and needs some room).
  local used root_mib
  used=$(cd "$work/root" && du -s -B1M --exclude=./boot/firmware --exclude=./var/lib/phare . | cut -f1)
  root_mib=$(((used * 115 / 100 + 128 + 3) / 4 * 4))
  log "making the partitions (genimage): rootfs ${root_mib} MiB for ${used} MiB of files"
  sed -e "s/@DATA_OWNER@/${uid:-0}:${gid:-0}/" -e "s/@ROOTFS_SIZE@/${root_mib}M/" \
    "$here/genimage.cfg" >"$work/genimage.cfg"
  genimage --config "$work/genimage.cfg" --rootpath "$work/root" \
    --tmppath "$work/tmp" --inputpath "$work" --outputpath "$work" >"$work/genimage.log" 2>&1 \
    || { tail -30 "$work/genimage.log" >&2; die "genimage failed"; }
}

# --- main -------------------------------------------------------------------------

ensure_tools
mkdir -p "$out" "$cache"

deb=$(find_deb)
if [ -z "$deb" ]; then
  [ "${PHARE_IMAGE_NO_PLAYER:-}" = 1 ] \
    || die "no target/debian/phare-player_*_arm64.deb: run \`make deb\` first"
  log "warning: building without the player (PHARE_IMAGE_NO_PLAYER=1)"
fi

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages" | grep -v '^$')
if [ -n "$deb" ]; then
  # The player's own dependencies go into the cached base, so that the
  # package itself installs offline in seconds.
  mapfile -t -O "${#packages[@]}" packages < <(deb_depends "$deb")
fi
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

base_key=$( {
  printf '%s\n' "${packages[@]}"
  declare -f build_base debian_sources
  (cd "$here/base" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -c1-16)
tarball="$cache/base-$base_key.tar"

image_key=$( {
  echo "$base_key"
  [ -z "$deb" ] || sha256sum <"$deb"
  sha256sum <"$0"
  (cd "$here" && find rootfs genimage.cfg bundle-README.txt -type f -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -c1-16)

if [ -f "$image" ] && [ "$(cat "$image.key" 2>/dev/null)" = "$image_key" ] \
  && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
  log "up to date: $image"
  exit 0
fi

start=$(date +%s)
if [ ! -f "$tarball" ]; then
  log "building the base $base_key (mmdebstrap, arm64 under emulation: several minutes)"
  rm -f "$out/base.tar.partial"
  build_base "$out/base.tar.partial" "$here/base" "${packages[@]}" >"$out/base.log" 2>&1 \
    || { tail -40 "$out/base.log" >&2; die "mmdebstrap failed (log: $out/base.log)"; }
  mkdir -p "$cache"
  mv "$out/base.tar.partial" "$tarball"
  # Keep the latest base only.
  find "$cache" -name 'base-*.tar' ! -name "base-$base_key.tar" -delete
  log "base built in $(($(date +%s) - start)) s"
else
  log "using the cached base $tarball"
fi

assemble "$tarball" "$deb"
mv "$work/phare-raspi-arm64.img" "$image"
mv "$work/vmlinuz" "$work/initrd.img" "$out/"
echo "$image_key" >"$image.key"
rm -rf --one-file-system "$work"
if [ -n "${PHARE_IMAGE_OWNER:-}" ]; then
  chown "$PHARE_IMAGE_OWNER" "$image" "$image.key" "$out/vmlinuz" "$out/initrd.img" "$out"
fi
log "built $image ($(du -h --apparent-size "$image" | cut -f1)) in $(($(date +%s) - start)) s"
