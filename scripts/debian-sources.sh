#!/usr/bin/env bash
# Prints the one-line apt sources of the Debian mirrors this machine's apt
# already uses (whatever /etc/apt/sources.list(.d) point at) for the given
# suite and its -updates and -security suites: the arm64 sysroot of
# `make deb` and the test chroot of `make deb-test` come from there.
set -euo pipefail
suite="${1:-bookworm}"

lines=$(apt-cache policy | awk -v suite="$suite" '
  /^ *-?[0-9]+ [a-z+]+:\/\// && $NF == "Packages" {
    split($3, sc, "/"); uri = $2; s = sc[1]; comp = sc[2]; next
  }
  /^ *release / {
    if (uri != "" && $0 ~ /o=Debian,/ && (s == suite || s == suite "-updates" || s == suite "-security"))
      print "deb " uri " " s " " comp
    uri = ""
  }' | sort -u)
if [ -z "$lines" ]; then
  echo "no Debian $suite source in this machine's apt configuration (run apt-get update?)" >&2
  exit 1
fi
echo "$lines"
