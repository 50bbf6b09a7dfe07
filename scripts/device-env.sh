#!/usr/bin/env bash
# Sourced on the GPU machine: unpacks the carried Debian packages (scripts/fetch-device-deps.sh)
# into a private root and points CMake, pkg-config, the loader and Python at it.
root=/tmp/nibble-deps
if [ ! -d "$root/usr" ]; then
  mkdir -p "$root"
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$root"; done
fi
multiarch=$root/usr/lib/x86_64-linux-gnu
export CMAKE_PREFIX_PATH=$root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export PKG_CONFIG_PATH=$multiarch/pkgconfig:$root/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
export LD_LIBRARY_PATH=$multiarch:$multiarch/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NIBBLE_CMAKE_ARGS="-DBLAS_LIBRARIES=$multiarch/openblas-pthread/libopenblas.so -DNIBBLE_CBLAS_INCLUDE_DIR=$root/usr/include/x86_64-linux-gnu/openblas-pthread"
[ -d .bnb ] && export PYTHONPATH=$PWD/.bnb${PYTHONPATH:+:$PYTHONPATH}
export PATH=/usr/local/cuda/bin:$PATH
