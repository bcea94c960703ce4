#!/bin/bash
# Builds the static release binary here and packs what the GPU machine needs into .device/ (ignored by git):
# the stripped, xz-compressed binary, the Debian libraries it links (absent there), and the open_clip wheels.
set -eu
cd "$(dirname "$0")/../.."
swift build -c release --static-swift-stdlib --product clipserve
mkdir -p .device/wheels
strip -o /tmp/clipserve-stripped .build/release/clipserve
xz -T2 -6 -c /tmp/clipserve-stripped > .device/clipserve.xz
libs=(libjpeg.so.62 libpng16.so.16 libwebp.so.7 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0)
( cd /usr/lib/x86_64-linux-gnu && tar -chJf - "${libs[@]}" ) > .device/lib.tar.xz
cp ../shared/wheels/*.whl .device/wheels/
du -sh .device
