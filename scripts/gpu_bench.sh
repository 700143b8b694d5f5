#!/usr/bin/env bash
# The GPU benchmark in one call: Plies' GPU bench (benches/gpu) and its PyTorch twin
# (bench/torch_gpu_reference.py) on the same card, one after the other, then one table of
# ratios paired by workload id.
#
#   scripts/gpu_bench.sh build   # on the build machine: the release bench binary and the
#                                # Vulkan loader packages into target/gpu-bench/
#   scripts/gpu_bench.sh [--small] [--only w1,w6,w3,w5,launch] [--out DIR] [-- plies bench args]
#
# On the lent GPU machine (/work/shared/DEVICE.md), carry target/gpu-bench (ignored by git):
#   run(command="scripts/gpu_bench.sh --out $OUT", carry=["target/gpu-bench"], timeout_s=560)
# The script unpacks the packages (target/gpu-bench/gl/*.deb, or .gl/*.deb) when the Vulkan
# loader is missing, and points the loader at NVIDIA's ICD when there is one. Each side runs
# under `timeout` (PLIES_TIMEOUT_S, default 300 s; TORCH_TIMEOUT_S, default 200 s), so the
# call ends within about 8.5 minutes. Without the binary it falls back to
# `cargo bench --bench gpu` (which compiles first).
# Output in DIR (default $OUT, else target/gpu-bench-out): plies.txt, torch.txt, ratios.txt.
# On a software adapter, or with --small, both sides run small shapes (other ids).
# TORCH_DEVICE=cpu runs the PyTorch side on the CPU: a dry run of the pairing, no reference.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

dir=target/gpu-bench
bin=$dir/plies-gpu-bench

if [ "${1:-}" = build ]; then
    exe=$(cargo build --release --bench gpu --message-format=json-render-diagnostics |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])') || exit 1
    [ -n "$exe" ] || { echo "gpu_bench.sh: cargo built no gpu bench executable" >&2; exit 1; }
    mkdir -p "$dir/gl" && cp "$exe" "$bin" || exit 1
    # Line tables double the binary; the carry limit is 64 MiB.
    strip --strip-debug "$bin" 2>/dev/null
    echo "built $bin (from $exe)"
    # The Vulkan loader and GL libraries NVIDIA's ICD needs, which the GPU machine lacks.
    lists=/tmp/plies-apt-amd64
    mkdir -p "$lists/partial"
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    if apt-get "${o[@]}" update >"$lists/log" 2>&1 && (cd "$dir/gl" && apt-get "${o[@]}" download \
        libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >>"$lists/log" 2>&1); then
        echo "packages: $(cd "$dir/gl" && echo *.deb)"
    else
        cat "$lists/log" >&2
        echo "gpu_bench.sh: could not download the Vulkan loader packages (see DEVICE.md)" >&2
    fi
    du -sh "$dir" | sed 's/^/carry size: /'
    exit 0
fi

small=() only=() out="${OUT:-target/gpu-bench-out}"
while [ $# -gt 0 ]; do
    case "$1" in
        --small) small=(--small) ;;
        --only) only=(--only "$2"); shift ;;
        --out) out="$2"; shift ;;
        --) shift; break ;;
        *) echo "gpu_bench.sh: unknown option $1 (plies bench options go after --)" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$out" || exit 1

# The GPU machine's image lacks the Vulkan loader and GL libraries (DEVICE.md, step 1).
debs=$(ls "$dir"/gl/*.deb .gl/*.deb 2>/dev/null)
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' && [ -n "$debs" ]; then
    for f in $debs; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then
    export VK_DRIVER_FILES=$nvidia_icd
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

status=0
echo "== plies ($(date -u +%H:%M:%S))"
if [ -x "$bin" ]; then
    plies_cmd=("$bin")
else
    echo "(no $bin: running cargo bench, which compiles first)"
    plies_cmd=(cargo bench --bench gpu --)
fi
timeout -k 10 "${PLIES_TIMEOUT_S:-300}" "${plies_cmd[@]}" "${small[@]}" "${only[@]}" "$@" 2>&1 | tee "$out/plies.txt"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { echo "plies bench exited with $rc (124: timed out)"; status=1; }

echo "== pytorch ($(date -u +%H:%M:%S))"
# A software adapter runs small shapes: give PyTorch the same ones.
torch_small=("${small[@]}")
grep -q '^(software adapter' "$out/plies.txt" && torch_small=(--small)
timeout -k 10 "${TORCH_TIMEOUT_S:-200}" python3 bench/torch_gpu_reference.py --device "${TORCH_DEVICE:-cuda}" \
    "${torch_small[@]}" "${only[@]}" 2>&1 |
    grep -v -e 'Failed to initialize NumPy' -e '_conversion_method_template' | tee "$out/torch.txt"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { echo "torch reference exited with $rc (124: timed out)"; status=1; }

echo "== ratios ($(date -u +%H:%M:%S))"
python3 - "$out/plies.txt" "$out/torch.txt" <<'EOF' | tee "$out/ratios.txt"
import json, sys

def lines(path):
    out = []
    for line in open(path, errors="replace"):
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out

ours = {m["id"]: m for m in lines(sys.argv[1]) if "id" in m}
theirs_all = lines(sys.argv[2])
theirs = {m["id"]: m for m in theirs_all if "id" in m}
adapter = next((m.get("adapter") for m in ours.values()), "?")
device = next((m.get("device") for m in theirs.values()), None)
skipped = next((m["skipped"] for m in theirs_all if "skipped" in m), None)
print(f"plies on {adapter}")
print(f"pytorch on {device}" if device else f"pytorch: {skipped or 'no results'}")
print("ratio = plies relative to pytorch, > 1 when plies is faster")
print(f"{'id':<20} {'unit':<8} {'plies':>12} {'pytorch':>12} {'ratio':>8}")
for wid, m in ours.items():
    t = theirs.get(wid)
    unit, v = m["unit"], m["value"]
    if t is None:
        print(f"{wid:<20} {unit:<8} {v:>12.4f} {'-':>12} {'-':>8}")
        continue
    tv = t["value"]
    ratio = (tv / v if unit == "ms" else v / tv) if v > 0 and tv > 0 else float("nan")
    note = ""
    if "params" in m and "params" in t and int(m["params"]) != int(t["params"]):
        note = f"  (parameter counts differ: {int(m['params'])} vs {int(t['params'])})"
    print(f"{wid:<20} {unit:<8} {v:>12.4f} {tv:>12.4f} {ratio:>7.3f}x{note}")
    print(json.dumps({"bench": "gpu", "id": wid, "unit": unit, "plies": v, "pytorch": tv, "ratio": ratio}))
EOF
exit $status
