#!/usr/bin/env bash
# Runs the README's commands as written, in order, so that the README cannot
# drift from the tools: `make readme-test`.
#
# Everything runs in a network and mount namespace of its own: the README's
# host names (broker-a.example.com, cdn-a.example.com…) resolve to its
# loopback, and /etc/mosquitto, /var/lib/mosquitto, /var/log/mosquitto and
# /run/mosquitto are private copies, so the installation steps run as
# written against Debian's own Mosquitto (its configuration, its drop to the
# `mosquitto` user) without touching this machine's. `sudo` runs the command
# (we are root); `systemctl start|stop|restart|reload mosquitto` does what
# Debian's unit does. A screen is a real phare-player started from the
# bundle `phare device add` wrote; the media origin is HTTPS, its
# certificate from a CA the screen trusts (SSL_CERT_FILE).
#
# Each ```sh block of README.md runs with `bash -euo pipefail` unless the
# HTML comment on the line before its fence says otherwise (clauses
# separated by `;`):
#   skip: WHY          not run here (WHY says where it is tested instead)
#   in DIR             run in DIR, relative to the operator's folder (made)
#   before STEP ARGS   a step of this harness before the block
#   then STEP ARGS     … after it
#   set NAME=COMMAND   <NAME> in the block becomes $(COMMAND) (the last clause)
# Steps: `media FILE...` (sample media in the operator's folder, also
# served by the origin), `origin`, `screen NAME`, `wait NAME TEXT` (until
# the screen's status.json contains TEXT), `offline NAME` (until it has no
# broker), `lines FILE N` (FILE has N lines at least).
# A command whose comment says `until Ctrl-C` runs for UNTIL_CTRL_C_S
# seconds (default 8), then gets SIGINT, as a user would press it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
readme=${README:-$repo/README.md}

if [ "${1:-}" != "--inside" ]; then
  # Root: a network namespace, mounts, Mosquitto's switch to its user.
  if [ "$(id -u)" -ne 0 ]; then exec sudo "$0" "$@"; fi
  "$repo/scripts/apt-ensure.sh" mosquitto:mosquitto openssl:openssl iproute2:ip \
    util-linux:unshare mount:mount procps:pkill,pgrep gstreamer1.0-tools:gst-launch-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  [ -x "$repo/target/debug/phare" ] && [ -x "$repo/target/debug/phare-player" ] || {
    echo "readme-test: build first (make readme-test does: cargo build --bins)" >&2
    exit 1
  }
  exec unshare --net --mount --propagation private --fork "$0" --inside
fi

work=$(mktemp -d /tmp/phare-readme.XXXXXX)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -F /run/mosquitto/mosquitto.pid 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "readme-test: kept $work for a look (screens' logs in $work/screens/)" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# --- the namespace: loopback names, private Mosquitto folders -------------
ip link set lo up
ip addr add 203.0.113.10/32 dev lo
cat >"$work/hosts" <<'EOF'
127.0.0.1 localhost broker-a.example.com broker-b.example.com cdn-a.example.com
::1 localhost
EOF
mount --bind "$work/hosts" /etc/hosts
private() { # DIR [copy]: DIR becomes an empty (or copied) private folder
  local dir=$1 shadow
  shadow="$work/root$1"
  mkdir -p "$shadow" "$dir"
  if [ "${2:-}" = copy ]; then cp -a "$dir/." "$shadow/"; fi
  mount --bind "$shadow" "$dir"
}
private /etc/mosquitto copy
for dir in /var/lib/mosquitto /var/log/mosquitto /run/mosquitto; do
  private "$dir"
  chown mosquitto:mosquitto "$dir"
done

# --- the shims: sudo and systemctl as a Debian host has them ---------------
mkdir -p "$work/bin"
cat >"$work/bin/sudo" <<'EOF'
#!/bin/sh
exec "$@"
EOF
cat >"$work/bin/systemctl" <<'EOF'
#!/usr/bin/env bash
# systemctl for mosquitto.service, as Debian's unit runs it.
set -euo pipefail
pidfile=/run/mosquitto/mosquitto.pid
start() {
  /usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf -d
  for _ in $(seq 50); do [ -s $pidfile ] && return 0; sleep 0.1; done
  echo "systemctl: mosquitto did not start; its log:" >&2
  tail -20 /var/log/mosquitto/mosquitto.log >&2 || true
  exit 1
}
stop() {
  if [ -s $pidfile ]; then
    pkill -F $pidfile || true
    for _ in $(seq 50); do pgrep -F $pidfile >/dev/null 2>&1 || break; sleep 0.1; done
    rm -f $pidfile
  fi
}
# A screen's `phare device reboot`: the harness's screens are not rebooted.
if [ "$1" = reboot ]; then echo "systemctl: reboot (not here)"; exit 0; fi
[ "${2:-}" = mosquitto ] || { echo "systemctl: this harness runs mosquitto only, not $*" >&2; exit 1; }
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  reload) pkill -HUP -F $pidfile ;;
  reload-or-restart) if pgrep -F $pidfile >/dev/null 2>&1; then pkill -HUP -F $pidfile; else start; fi ;;
  *) echo "systemctl: $1 is not emulated" >&2; exit 1 ;;
esac
EOF
chmod +x "$work/bin/sudo" "$work/bin/systemctl"
export PATH="$work/bin:$repo/target/debug:$PATH"

operator="$work/operator"
mkdir -p "$operator" "$work/www/media" "$work/screens"

# --- the steps ------------------------------------------------------------
step_media() { # sample media, in the operator's folder and on the origin
  local file
  for file in "$@"; do
    case "$file" in
      *.mp4) gst-launch-1.0 -q videotestsrc num-buffers=75 pattern=ball \
        ! video/x-raw,width=640,height=360,framerate=25/1 ! videoconvert \
        ! openh264enc ! h264parse ! mp4mux ! filesink location="$operator/$file" 2>/dev/null ;;
      *.png) gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte \
        ! video/x-raw,width=640,height=360 ! videoconvert ! pngenc \
        ! filesink location="$operator/$file" ;;
      *) echo "readme-test: no sample media for $file" >&2; return 1 ;;
    esac
    ln -sf "$operator/$file" "$work/www/media/$file"
  done
}

step_origin() { # https://cdn-a.example.com/ on 443, its CA in $work/web-ca.pem
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=readme-test web CA" \
    -keyout "$work/web-ca.key" -out "$work/web-ca.pem" 2>/dev/null
  openssl req "${ec[@]}" -subj /CN=cdn-a.example.com \
    -keyout "$work/web.key" -out "$work/web.csr" 2>/dev/null
  openssl x509 -req -in "$work/web.csr" -CA "$work/web-ca.pem" -CAkey "$work/web-ca.key" \
    -days 2 -extfile <(echo "subjectAltName=DNS:cdn-a.example.com") \
    -out "$work/web.pem" 2>/dev/null
  (cd "$work/www" && exec openssl s_server -quiet -WWW -accept 443 \
    -cert "$work/web.pem" -key "$work/web.key") >/dev/null 2>&1 &
  pids+=($!)
}

step_screen() { # NAME: a phare-player from the bundle keys/devices/NAME
  local name=$1 dir="$work/screens/$1"
  mkdir -p "$dir"
  cp -a "$operator/keys/devices/$name/." "$dir/"
  sed -i -e 's/^video_sink = .*/video_sink = "fake"/' \
    -e "s|^root = .*|&\ndata_dir = \"$dir/data\"|" "$dir/player.toml"
  SSL_CERT_FILE="$work/web-ca.pem" RUST_LOG=info \
    phare-player --config "$dir/player.toml" >"$dir/log" 2>&1 &
  pids+=($!)
}

step_wait() { # NAME TEXT: until the screen's status says TEXT
  local name=$1 text=$2 status="$work/screens/$1/data/status.json"
  for _ in $(seq 120); do
    if grep -qF -- "$text" "$status" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "readme-test: screen $name never reported $text; its status and log:" >&2
  cat "$status" >&2 2>/dev/null || true
  tail -30 "$work/screens/$name/log" >&2
  return 1
}

step_lines() { # FILE N: FILE has at least N lines
  local count
  count=$(wc -l <"$1")
  [ "$count" -ge "$2" ] || { echo "readme-test: $1 has $count lines, not $2" >&2; return 1; }
}

step_offline() { # NAME: until the screen says it has no broker
  step_wait "$1" '"broker":null'
}

run_step() {
  local name=$1
  shift
  "step_$name" "$@"
}

# --- the blocks -----------------------------------------------------------
# What a comment `until Ctrl-C` promises, for one command.
until_ctrl_c() {
  "$@" &
  local pid=$!
  sleep "${UNTIL_CTRL_C_S:-8}"
  kill -INT "$pid"
  wait "$pid"
}
export -f until_ctrl_c

run_block() { # LINE DIRECTIVE FILE
  local line=$1 directive=$2 file=$3 dir=$operator clause
  local -a before=() after=()
  # `set` takes the rest of the directive: its command may hold `;`.
  local setting=""
  if [[ "$directive" == *"set "* ]]; then
    setting="set ${directive#*set }"
    directive=${directive%%set *}
  fi
  IFS=';' read -ra clauses <<<"$directive"
  clauses+=("$setting")
  for clause in "${clauses[@]}"; do
    clause=$(echo "$clause" | sed 's/^ *//; s/ *$//')
    case "$clause" in
      "") ;;
      skip:*) echo "== README line $line: skipped (${clause#skip: })"; return 0 ;;
      "in "*) dir="$operator/${clause#in }" ;;
      "before "*) before+=("${clause#before }") ;;
      "then "*) after+=("${clause#then }") ;;
      "set "*)
        # Evaluated where it is used, when the block gets there.
        local assignment=${clause#set } name content
        name=${assignment%%=*}
        content=$(<"$file")
        printf '%s\n' "${content//"<$name>"/"\$(${assignment#*=})"}" >"$file" ;;
      *) echo "readme-test: README line $line: unknown clause '$clause'" >&2; return 1 ;;
    esac
  done
  mkdir -p "$dir"
  # Steps run in this shell: the processes they start are the cleanup's.
  pushd "$dir" >/dev/null
  for clause in "${before[@]}"; do eval "run_step $clause"; done
  popd >/dev/null
  # `cmd …  # … until Ctrl-C` runs as the user would run it.
  sed -i -E 's/^(.*[^ ]) +# (.*)until Ctrl-C(.*)$/until_ctrl_c \1/' "$file"
  echo "== README line $line (in ${dir#"$work"/})"
  sed 's/^/   /' "$file"
  if ! (cd "$dir" && bash -euo pipefail "$file"); then
    echo "readme-test: the block at README line $line failed, as written" >&2
    return 1
  fi
  pushd "$dir" >/dev/null
  for clause in "${after[@]}"; do eval "run_step $clause"; done
  popd >/dev/null
}

directive=""
block=""
in_block=false
n=0
fence_line=0
blocks=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  # Blocks inside list items are indented; their commands are not.
  text="${line#"${line%%[! ]*}"}"
  if $in_block; then
    if [ "$text" = '```' ]; then
      in_block=false
      blocks=$((blocks + 1))
      printf '%s' "$block" >"$work/block.sh"
      run_block "$fence_line" "$directive" "$work/block.sh"
      directive=""
    else
      block+="$text"$'\n'
    fi
  elif [ "$text" = '```sh' ]; then
    in_block=true
    fence_line=$n
    block=""
  elif [[ "$text" =~ ^\<!--\ readme-test:\ (.*)\ --\>$ ]]; then
    directive=${BASH_REMATCH[1]}
  elif [ -n "$text" ]; then
    directive=""
  fi
done <"$readme"
echo "readme-test: the $blocks sh blocks of README.md ran as written"
