#!/usr/bin/env bash
# The fresh-machine check: the GPU suites on a machine whose only wgpu adapter is GL (Mesa's
# llvmpipe through EGL, as on most desktops and containers without a Vulkan driver). Plies
# refuses GL adapters (wgpu-hal's GLES backend deadlocks under concurrent use), so here every
# GPU suite must pass by skipping loudly, PLIES_REQUIRE_GPU=1 must fail loudly, and
# `--device gpu` must be a one-line error with exit code 1. Run by .ci/run after the README's
# test command; needs no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
unset PLIES_REQUIRE_GPU PLIES_DEVICE
suites=(-p plies --test conformance --test nn_gpu --test train_mlp --test device -p plies-shaders --test backend)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() { echo "check_without_vulkan: FAILED: $*" >&2; tail -40 "$log" >&2; exit 1; }

# Two ways of hiding Vulkan: no driver file for the loader, and wgpu told to use GL only.
for hide in VK_DRIVER_FILES=/nonexistent WGPU_BACKEND=gl; do
  echo "== GPU suites with $hide"
  env "$hide" cargo test "${suites[@]}" >"$log" 2>&1 || fail "the GPU suites with $hide"
  grep -q "GPU tests SKIPPED: .*only GL" "$log" || grep -q "GPU tests SKIPPED: wgpu found no" "$log" \
    || fail "no loud skip message with $hide"
  grep -q "panicked" "$log" && fail "a panic with $hide"
  grep -E "^test result:" "$log" | sed 's/^/   /'
done

echo "== PLIES_REQUIRE_GPU=1 with VK_DRIVER_FILES=/nonexistent must fail"
if VK_DRIVER_FILES=/nonexistent PLIES_REQUIRE_GPU=1 cargo test -p plies --test conformance matmul >"$log" 2>&1; then
  fail "PLIES_REQUIRE_GPU=1 passed without a usable adapter"
fi
grep -q "PLIES_REQUIRE_GPU=1 but no GPU is usable" "$log" || fail "PLIES_REQUIRE_GPU=1 failed without saying why"

echo "== quickstart --device gpu with VK_DRIVER_FILES=/nonexistent must exit 1 with a one-line error"
set +e
VK_DRIVER_FILES=/nonexistent cargo run -q --example quickstart -- --device gpu --steps 1 --out "$(mktemp -d)" >"$log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || fail "quickstart exited with $rc, not 1"
grep -q "^error: device gpu:0 is not available: .*apt-get install mesa-vulkan-drivers" "$log" || fail "no error naming what to install"
grep -q -E "panicked|backtrace" "$log" && fail "quickstart panicked"
echo "check_without_vulkan: ok"
