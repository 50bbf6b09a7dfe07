#!/usr/bin/env bash
# Run HERE (a machine with Debian's package lists), before a GPU run: the lent GPU machine has
# CUDA, CMake and torch but none of nibble's Debian build dependencies and no network, so we
# carry the .deb files (and the bitsandbytes wheel's files for the peer) in ignored folders:
#   .deps/debs/  Debian packages, unpacked on the GPU machine by scripts/device-env.sh
#   .bnb/        bitsandbytes 0.50.2, CUDA 13 library only (the rest of the wheel is dropped)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs
(cd .deps/debs && apt-get download nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 \
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 \
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5 \
  libgtest-dev libgmock-dev googletest libbenchmark-dev libbenchmark1debian)
if [ ! -d .bnb/bitsandbytes ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_24_x86_64 -d "$tmp" bitsandbytes==0.50.2
  mkdir -p .bnb && (cd .bnb && unzip -q "$tmp"/bitsandbytes-*.whl)
  find .bnb -name 'libbitsandbytes_*.so' ! -name '*cuda130*' -delete
  rm -rf "$tmp"
fi
du -sh .deps .bnb
