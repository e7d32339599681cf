#!/usr/bin/env bash
# The image's boot test (`make image-test`): boots target/image/phare-raspi-arm64.img
# in QEMU's arm64 "virt" board under software emulation and proves that
#   1. systemd starts phare-player from the image (serial console),
#   2. the player plays its preloaded assignment from the cache with no
#      network at all: no broker is reachable until it plays, the device
#      config names no origin, and nothing but one forwarded port exists,
#   3. it then connects to a Mosquitto on the host's loopback, reached only
#      through QEMU user-mode networking with restrict=on and one guestfwd
#      (10.0.2.100:1883 -> 127.0.0.1:<port>), and publishes its status there,
#   4. the picture reaches the screen through DRM/KMS (kmssink on the
#      guest's virtio-gpu, as on a Pi's vc4): QEMU's screen dump shows the
#      preloaded still's colour bars; signed display_off and display_on
#      commands blank the screen and bring the picture back,
#   5. its status file on the data partition, read after shutdown, says it
#      played the preloaded asset.
# The built image stays pristine: the guest boots a qcow2 overlay of it.
#
# The preloaded cache is made honestly: the real player, built for this
# host, fetches and verifies a signed assignment from a loopback broker and
# origin into a data_dir, which becomes the image's data partition
# (SQLite and content files are the same on every architecture).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
image="$repo/target/image/phare-raspi-arm64.img"
kernel="$repo/target/image/vmlinuz"
initrd="$repo/target/image/initrd.img"
work="$repo/target/image-test"
# This host's binaries, for the preload: the release ones `make deb` built
# next to the packages, else a debug build.
bins="$repo/target/release"
[ -x "$bins/phare-player" ] && [ -x "$bins/phare" ] || bins="$repo/target/debug"
phare="$bins/phare"
player="$bins/phare-player"

FLEET=boot-test
DEVICE=screen-1
GUEST_BROKER=10.0.2.100
# The guest's virtio-gpu mode, and the player's canvas: small, since every
# pixel is converted by an emulated CPU.
SCREEN_WIDTH=640
SCREEN_HEIGHT=360
BOOT_TIMEOUT=${PHARE_BOOT_TIMEOUT:-420}

log() { printf '[boot-test] %s\n' "$*" >&2; }
die() { printf '[boot-test] FAIL: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  # The data partition's files belong to the image's phare user.
  exec sudo "$0" "$@"
fi

ensure_tools() {
  # qemu-utils at qemu-system-arm's version: a newer one (a backport)
  # Breaks the older qemu-system-common, and apt would remove it.
  # The GStreamer plugins: the media made for the preload, and the host
  # player playing them.
  local packages=(qemu-system-arm:qemu-system-aarch64 qemu-utils=@qemu-system-arm:qemu-img,qemu-io
    mosquitto:mosquitto mosquitto-clients:mosquitto_sub netcat-openbsd:nc jq:jq python3:python3
    mtools:mcopy e2fsprogs:mkfs.ext4,debugfs,e2fsck util-linux:partx
    gstreamer1.0-tools:gst-launch-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-libav)
  "$repo/scripts/apt-ensure.sh" "${packages[@]}"
}

pids=()
qemu_pid=""
cleanup() {
  local status=$?
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null || true
  fi
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ] && [ -f "$work/serial.log" ]; then
    echo "----- last 60 lines of the serial console ($work/serial.log) -----" >&2
    tail -n 60 "$work/serial.log" | tr -d '\r' >&2
  fi
  exit "$status"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until a command succeeds: wait_until SECONDS WHAT COMMAND...
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "timed out after ${timeout}s waiting for $what"
    fi
    if [ -n "$qemu_pid" ] && ! kill -0 "$qemu_pid" 2>/dev/null; then
      die "QEMU exited while waiting for $what"
    fi
    sleep 2
  done
}

start_mosquitto() { # dir port
  mkdir -p "$1"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$2" >"$1/mosquitto.conf"
  /usr/sbin/mosquitto -c "$1/mosquitto.conf" >"$1/mosquitto.log" 2>&1 &
  pids+=($!)
  wait_until 20 "mosquitto on 127.0.0.1:$2" nc -z 127.0.0.1 "$2"
}

# --- the preloaded cache, made by the real player on this host ------------------

preload() {
  log "preloading: keys, media, a signed assignment, the host player fetching it"
  "$phare" keys init --fleet "$FLEET" --dir "$work/keys" >/dev/null
  mkdir -p "$work/media"
  gst-launch-1.0 -q videotestsrc num-buffers=75 pattern=ball background-color=0xff2020a0 \
    ! video/x-raw,width=320,height=240,framerate=25/1 ! videoconvert \
    ! openh264enc ! h264parse ! mp4mux ! filesink location="$work/media/clip.mp4"
  gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte \
    ! video/x-raw,width=320,height=240 ! videoconvert ! pngenc \
    ! filesink location="$work/media/still.png"

  local origin_port broker_port
  origin_port=$(free_port)
  python3 -m http.server "$origin_port" --bind 127.0.0.1 --directory "$work/media" \
    >"$work/origin.log" 2>&1 &
  local origin_pid=$!
  pids+=("$origin_pid")
  broker_port=$(free_port)
  start_mosquitto "$work/preload-broker" "$broker_port"
  local preload_broker_pid=${pids[-1]}
  wait_until 20 "the origin on 127.0.0.1:$origin_port" nc -z 127.0.0.1 "$origin_port"

  local origin="http://127.0.0.1:$origin_port/"
  "$phare" asset add "$work/media/clip.mp4" --origin "$origin" >"$work/clip.json"
  "$phare" asset add "$work/media/still.png" --origin "$origin" >"$work/still.json"
  CLIP=$(jq -r 'keys[0]' "$work/clip.json")
  STILL=$(jq -r 'keys[0]' "$work/still.json")
  VERSION=$(date +%s)
  jq -n --slurpfile clip "$work/clip.json" --slurpfile still "$work/still.json" \
    --arg target "device:$DEVICE" --arg fleet "$FLEET" --argjson version "$VERSION" \
    --arg issued "$(date -u +%FT%TZ)" --arg expires "$(date -u -d '+30 days' +%FT%TZ)" '{
      kind: "assignment", fleet: $fleet, target: $target, version: $version,
      issued_at: $issued, expires_at: $expires, timezone: "UTC",
      assets: ($clip[0] + $still[0]),
      playlists: {main: [{asset: ($clip[0] | keys[0])},
                         {asset: ($still[0] | keys[0]), duration_ms: 3000}]},
      default_playlist: "main"}' >"$work/assignment.json"
  "$phare" sign --keyring "$work/keys" "$work/assignment.json" -o "$work/assignment.env.json"
  "$phare" publish --keyring "$work/keys" --broker "mqtt://127.0.0.1:$broker_port" "$work/assignment.env.json" >/dev/null

  mkdir -p "$work/host"
  cat >"$work/host/player.toml" <<EOF
device_id = "$DEVICE"
fleet = "$FLEET"
brokers = ["mqtt://127.0.0.1:$broker_port"]
origins = ["$origin"]
root = "$work/keys/root.json"
data_dir = "$work/host/data"
video_sink = "fake"
status_interval_s = 2
EOF
  "$player" --config "$work/host/player.toml" >"$work/host/player.log" 2>&1 &
  local player_pid=$!
  pids+=("$player_pid")
  host_playing() {
    jq -e --argjson v "$VERSION" \
      '.assignment.version == $v and .playing.asset != null and .cache.assets >= 2' \
      "$work/host/data/status.json" >/dev/null 2>&1
  }
  wait_until 120 "the host player to fetch and play the assignment" host_playing
  kill -TERM "$player_pid"
  wait "$player_pid" || true
  kill "$origin_pid" "$preload_broker_pid"
  wait "$origin_pid" "$preload_broker_pid" 2>/dev/null || true
  log "cache preloaded: $(jq -c '.cache' "$work/host/data/status.json")"
}

# --- the disk: a qcow2 overlay with the bundle and the cache written in -----------

# Sector offset and count of partition N of the image.
part_start() { partx -g -n "$1" -o START "$image" | tr -d ' '; }
part_sectors() { partx -g -n "$1" -o SECTORS "$image" | tr -d ' '; }

# Writes FILE over the overlay's bytes from sector START on.
write_at() { # file start
  qemu-io -f qcow2 -c "write -s $1 $(($2 * 512)) $(stat -c %s "$1")" "$work/disk.qcow2" >/dev/null
}

make_disk() {
  log "making the disk: an overlay of the image, the bundle on bootfs, the cache on data"
  local size
  size=$(stat -c %s "$image")
  # 512 MiB more than the image: the first boot grows the data partition.
  qemu-img create -q -f qcow2 -F raw -b "$image" "$work/disk.qcow2" $((size + (512 << 20)))

  # The bundle, as `phare device add` would write it: config and pinned root.
  mkdir -p "$work/bundle"
  cp "$work/keys/root.json" "$work/bundle/root.json"
  cat >"$work/bundle/player.toml" <<EOF
# Written by images/boot-test.sh: the broker is the host's loopback Mosquitto,
# forwarded by QEMU; no origin, so nothing can be fetched.
device_id = "$DEVICE"
fleet = "$FLEET"
brokers = ["mqtt://$GUEST_BROKER:1883"]
root = "root.json"
video_sink = "kms"
status_interval_s = 5

[display]
width = $SCREEN_WIDTH
height = $SCREEN_HEIGHT
EOF
  local boot_start boot_sectors
  boot_start=$(part_start 1)
  boot_sectors=$(part_sectors 1)
  dd if="$image" of="$work/bootfs.img" bs=512 skip="$boot_start" count="$boot_sectors" status=none
  mcopy -o -i "$work/bootfs.img" "$work/bundle/player.toml" "$work/bundle/root.json" ::phare/
  write_at "$work/bootfs.img" "$boot_start"

  # The data partition: the host player's data_dir, owned by the image's
  # phare user, without its status file (the device writes its own).
  local root_start passwd uid gid data_start data_sectors
  root_start=$(part_start 2)
  passwd=$(debugfs -R 'cat /etc/passwd' "$image?offset=$((root_start * 512))" 2>/dev/null)
  uid=$(awk -F: '$1 == "phare" { print $3 }' <<<"$passwd")
  gid=$(awk -F: '$1 == "phare" { print $4 }' <<<"$passwd")
  [ -n "$uid" ] || die "the image has no phare user (was it built with the player package?)"
  rm -rf "$work/devdata"
  cp -a "$work/host/data" "$work/devdata"
  rm -f "$work/devdata/status.json"
  chown -R "$uid:$gid" "$work/devdata"
  data_start=$(part_start 3)
  data_sectors=$(part_sectors 3)
  mkfs.ext4 -q -F -L data -m 1 -d "$work/devdata" -E root_owner="$uid:$gid" \
    "$work/data.img" "$((data_sectors / 2))k"
  write_at "$work/data.img" "$data_start"
  rm -f "$work/bootfs.img" "$work/data.img"
}

# --- boot -----------------------------------------------------------------------

serial_has() { tr -d '\r' <"$work/serial.log" | grep -qE "$1"; }

boot() {
  BROKER_PORT=$(free_port)
  log "booting QEMU virt (cortex-a72, TCG); the guest's broker $GUEST_BROKER:1883 -> 127.0.0.1:$BROKER_PORT"
  : >"$work/serial.log"
  # restrict=on: the guest reaches nothing but the guestfwd below (no
  # outside, no host); each guest connection runs nc to the host loopback.
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 \
    -kernel "$kernel" -initrd "$initrd" \
    -append "root=LABEL=rootfs ro rootwait console=ttyAMA0 net.ifnames=0 systemd.journald.forward_to_console=1" \
    -drive if=none,file="$work/disk.qcow2",format=qcow2,id=hd \
    -device virtio-blk-device,drive=hd \
    -netdev "user,id=net,restrict=on,guestfwd=tcp:$GUEST_BROKER:1883-cmd:nc 127.0.0.1 $BROKER_PORT" \
    -device virtio-net-device,netdev=net \
    -device "virtio-gpu-pci,xres=$SCREEN_WIDTH,yres=$SCREEN_HEIGHT" \
    -display none -monitor "unix:$work/monitor.sock,server=on,wait=off" \
    -serial "file:$work/serial.log" -no-reboot \
    >"$work/qemu.log" 2>&1 &
  qemu_pid=$!
  local started=$SECONDS

  wait_until "$BOOT_TIMEOUT" "systemd to start phare-player.service" \
    serial_has 'Started phare-player\.service'
  log "systemd started phare-player.service after $((SECONDS - started)) s"
  wait_until 240 "the player to play version $VERSION from its cache" \
    serial_has "phare-player\[[0-9]+\]: .*playing.*version=$VERSION"
  log "playing from the cache after $((SECONDS - started)) s, with no broker reachable"
  if serial_has 'phare-player\[[0-9]+\]: .*connected'; then
    die "the player says it connected before any broker was running"
  fi

  wait_until 120 "the still's colour bars on the KMS screen" screen_is bars
  log "the still shows on the KMS screen after $((SECONDS - started)) s ($work/screen.ppm)"

  start_mosquitto "$work/broker" "$BROKER_PORT"
  local topic="phare/$FLEET/device/$DEVICE/status"
  status_online() {
    mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic" -C 1 -W 5 >"$work/status-mqtt.json" 2>/dev/null \
      && jq -e --argjson v "$VERSION" --arg broker "mqtt://$GUEST_BROKER:1883" \
        '.online == true and .broker == $broker and .assignment.version == $v
         and .playing.asset != null' "$work/status-mqtt.json" >/dev/null
  }
  wait_until 240 "an online status on the host broker" status_online
  log "online through the guestfwd after $((SECONDS - started)) s: $(jq -c '{online, broker, playing, assignment}' "$work/status-mqtt.json")"

  # Off and on again by signed commands: the output goes to NULL, which
  # releases the KMS card, and takes it again to show the picture.
  send_command display_off
  display_is() {
    mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t "$topic" -C 1 -W 5 2>/dev/null \
      | jq -e --arg display "$1" '.display == $display' >/dev/null
  }
  wait_until 120 "the status to say the display is off" display_is off
  wait_until 60 "the colour bars gone from the KMS screen" screen_is dark
  send_command display_on
  wait_until 120 "the status to say the display is on" display_is on
  wait_until 120 "the colour bars back on the KMS screen" screen_is bars
  log "display_off blanked the KMS screen, display_on brought the picture back, after $((SECONDS - started)) s"

  # A clean boot: no unit failed (the root is read-only; nothing may trip on it).
  local failed
  failed=$(tr -d '\r' <"$work/serial.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -E '^\[FAILED\]' | sort -u || true)
  [ -z "$failed" ] || die "units failed during boot:
$failed"

  log "shutting the guest down"
  printf 'system_powerdown\n' | nc -U -q 1 "$work/monitor.sock" >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 120))
  while kill -0 "$qemu_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 2; done
  if kill -0 "$qemu_pid" 2>/dev/null; then
    log "no clean power-off within 120 s: stopping QEMU (the journal replay below copes)"
    kill "$qemu_pid"
  else
    log "the guest powered off cleanly after $((SECONDS - started)) s"
  fi
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
}

# A signed command to the device, published on the host broker.
send_command() { # action
  local now
  now=$(date -u +%FT%TZ)
  jq -n --arg fleet "$FLEET" --arg device "$DEVICE" --arg action "$1" --arg now "$now" \
    --arg id "boot-test-$1-$SECONDS" --arg expires "$(date -u -d '+5 minutes' +%FT%TZ)" '{
      kind: "command", fleet: $fleet, device: $device, id: $id, issued_at: $now,
      expires_at: $expires, action: $action, args: {}}' >"$work/command.json"
  "$phare" sign --keyring "$work/keys" "$work/command.json" -o "$work/command.env.json"
  "$phare" publish --keyring "$work/keys" --broker "mqtt://127.0.0.1:$BROKER_PORT" "$work/command.env.json" >/dev/null
}

# Dumps QEMU's screen (the virtio-gpu scanout) and tells whether it shows
# the SMPTE bars of the preloaded still (`bars`: yellow, cyan and magenta,
# each over 4 % of it; a bar is 7 % once pillarboxed) or is `dark` (under
# 1 % of the screen bright: both items fill most of it with bright colour,
# the clip's background is blue). False when it is neither, or no dump.
screen_is() { # bars|dark
  rm -f "$work/screen.ppm"
  printf 'screendump %s\n' "$work/screen.ppm" | nc -U -q 1 "$work/monitor.sock" >/dev/null 2>&1 || true
  [ -s "$work/screen.ppm" ] || return 1
  python3 - "$work/screen.ppm" "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
fields, at = [], 0
while len(fields) < 4:  # P6, width, height, maxval; comments start with '#'
    while data[at:at + 1].isspace():
        at += 1
    if data[at:at + 1] == b"#":
        at = data.index(b"\n", at)
        continue
    end = at
    while not data[end:end + 1].isspace():
        end += 1
    fields.append(data[at:end])
    at = end
width, height = int(fields[1]), int(fields[2])
pixels = data[at + 1:at + 1 + width * height * 3]
def share(test):
    hits = sum(1 for i in range(0, len(pixels), 3 * 7)
               if test(pixels[i], pixels[i + 1], pixels[i + 2]))
    return hits / (len(pixels) / (3 * 7))
hi, lo = lambda v: v > 150, lambda v: v < 60
bars = {
    "yellow": share(lambda r, g, b: hi(r) and hi(g) and lo(b)),
    "cyan": share(lambda r, g, b: lo(r) and hi(g) and hi(b)),
    "magenta": share(lambda r, g, b: hi(r) and lo(g) and hi(b)),
}
bright = share(lambda r, g, b: max(r, g, b) > 60)
print("screen %dx%d: %s, bright %.3f" % (width, height, bars, bright), file=sys.stderr)
if sys.argv[2] == "bars":
    sys.exit(0 if all(v > 0.04 for v in bars.values()) else 1)
sys.exit(0 if bright < 0.01 else 1)
PY
}

# --- after: the status file on the data partition -------------------------------

read_status_file() {
  local data_start total
  data_start=$(part_start 3)
  total=$(($(qemu-img info --output=json "$work/disk.qcow2" | jq '."virtual-size"') / 512))
  # (qemu-img dd counts the skipped blocks in count=)
  qemu-img dd -f qcow2 -O raw bs=512 skip="$data_start" count="$total" \
    if="$work/disk.qcow2" of="$work/data-after.img"
  e2fsck -fy "$work/data-after.img" >"$work/e2fsck.log" 2>&1 || true
  debugfs -R 'cat /status.json' "$work/data-after.img" >"$work/status-file.json" 2>/dev/null || true
  rm -f "$work/data-after.img"
  [ -s "$work/status-file.json" ] && jq -e . "$work/status-file.json" >/dev/null \
    || die "no readable status.json on the data partition (e2fsck: $(tail -2 "$work/e2fsck.log"))"
  log "status.json on the data partition: $(jq -c '{device, assignment, playing, cache}' "$work/status-file.json")"
  jq -e --argjson v "$VERSION" --arg clip "$CLIP" --arg still "$STILL" --arg device "$DEVICE" '
      .device == $device and .assignment.version == $v
      and (.playing.asset == $clip or .playing.asset == $still)
      and .cache.assets >= 2' "$work/status-file.json" >/dev/null \
    || die "status.json does not show the preloaded assignment playing"
  # The first boot grew the data partition into the overlay's extra 512 MiB.
  local free
  free=$(jq '.cache.free_bytes // 0' "$work/status-file.json")
  if [ "$free" -gt $((300 << 20)) ]; then
    log "the data partition grew on first boot (free: $((free >> 20)) MiB)"
  else
    die "the data partition did not grow on first boot (free: $((free >> 20)) MiB)"
  fi
}

# --- main -------------------------------------------------------------------------

ensure_tools
for f in "$image" "$kernel" "$initrd"; do
  [ -f "$f" ] || die "$f is missing: run \`make image\`"
done
[ -x "$phare" ] && [ -x "$player" ] || die "no host binaries: run \`make deb\` (or cargo build --bins)"
rm -rf "$work"
mkdir -p "$work"
begin=$SECONDS

preload
make_disk
boot
read_status_file

log "passed in $((SECONDS - begin)) s: systemd started phare-player, it played from its cache" \
  "with no network onto the KMS screen, then connected to the host's loopback broker through restrict=on + guestfwd"
echo "1 passed, 0 failed"
