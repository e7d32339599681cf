#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Phare needs to build, test and run the
# demo. Fast when they are already there: nothing is fetched then.
set -euo pipefail

packages=(
  build-essential pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-libav gstreamer1.0-tools fonts-dejavu-core
  mosquitto tzdata  # schedules are read in IANA time zones
  curl  # the cache benchmark's baseline
  python3-gi gir1.2-gst-rtsp-server-1.0  # the tests' RTSP camera
  libfaketime  # the tests' spoofed clocks
  # the outputs tests: the x, gl and wayland sinks on Xvfb and Weston,
  # through Mesa's software rasteriser
  xvfb weston gstreamer1.0-x gstreamer1.0-gl libgl1-mesa-dri
)

"$(dirname "$0")/apt-ensure.sh" "${packages[@]}"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust 1.95 (https://rustup.rs), then run this again" >&2
  exit 1
fi
