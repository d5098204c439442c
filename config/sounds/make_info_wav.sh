#!/bin/sh
# Regenerate the abandon-path information message (8 kHz mono 16-bit WAV, what G.711 trunks carry).
# Usage: config/sounds/make_info_wav.sh ["message text"] [out.wav]
set -eu
here=$(dirname "$0")
text=${1:-"This is a call from the Tsunagu demo shop. Sorry, nobody is free to take your call right now. We will call again later. To stop these calls, call zero three, one two three four, five six seven eight."}
out=${2:-"$here/info.wav"}
tmp=$(mktemp --suffix=.wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us -s 165 -w "$tmp" "$text"
sox "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$out" norm -3
echo "$out: $(soxi -D "$out") s"
