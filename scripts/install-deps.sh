#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Phare needs to build, test and run the
# demo, and checks the commands the build and the tests run
# (scripts/apt-ensure.sh: one apt transaction; nothing is fetched when they
# are already there).
set -euo pipefail

packages=(
  build-essential:cc,make pkg-config:pkg-config
  ca-certificates  # cargo fetches the crates over HTTPS
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-libav gstreamer1.0-tools:gst-launch-1.0,gst-inspect-1.0 fonts-dejavu-core
  mosquitto:mosquitto,mosquitto_passwd
  tzdata  # schedules are read in IANA time zones
  curl:curl  # the cache benchmark's baseline
  procps:kill,pgrep  # the tests stop players and brokers with kill
  python3-gi:python3 gir1.2-gst-rtsp-server-1.0  # the tests' RTSP camera
  ffmpeg:ffmpeg  # the tests' live channels as a company's encoder makes them
  libfaketime  # the tests' spoofed clocks (LD_PRELOAD)
  mount:mount,umount  # make soak's full disk (a tmpfs)
  # the outputs tests: the x, gl and wayland sinks on Xvfb and Weston,
  # through Mesa's software rasteriser
  xvfb:Xvfb weston:weston gstreamer1.0-x gstreamer1.0-gl libgl1-mesa-dri
)

"$(dirname "$0")/apt-ensure.sh" "${packages[@]}"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust 1.95 (https://rustup.rs), then run this again" >&2
  exit 1
fi
