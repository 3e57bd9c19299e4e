#!/usr/bin/env bash
# Everything minidl checks on a real GPU, in one go (a few minutes):
#
#   1. the kernel equivalence suite on the device (pytest -m gpu): cuda == cpu;
#   2. minidl bench --kernels: each hand-written kernel against cuBLAS / cuDNN;
#   3. minidl bench --compare-torch --device cuda: VGG16 and the Gatys loss against
#      PyTorch's cuDNN (TF32 off), with Winograd (the default) and with im2col;
#   4. lesson 04 on cuda, and a 512 px stylisation with its --log.
#
#     bash tools/gpu_check.sh [OUT_DIR]        (default: gpu_check/)
#
# Runs from a source checkout without installing it (PYTHONPATH), with the python3
# on PATH (set PYTHON to choose another); it needs CuPy, and PyTorch with CUDA for
# the comparisons.  Set MINIDL_WEIGHTS for the real-weight steps.  Every step has
# its own time limit, and a failing step does not stop the next one; the script's
# exit status is the number of steps that failed.  All output goes to
# OUT_DIR/gpu_check.log, the stylised image and its log beside it.
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu_check}
mkdir -p "$out"
log="$out/gpu_check.log"
: >"$log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
failed=0

step() {  # step NAME SECONDS COMMAND...: run, log, and time one step
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name: $*" | tee -a "$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

step gpu 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
step versions 60 "$py" -c "import cupy, numpy, torch; print('CuPy', cupy.__version__, \
'NumPy', numpy.__version__, 'PyTorch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())"
step doctor 60 "$py" -m minidl.cli doctor
step tests 200 "$py" -m pytest -q -p no:cacheprovider -m gpu -rfE tests
step kernels 120 "$py" -m minidl.cli bench --kernels --device cuda
step vgg-vs-cudnn 150 "$py" -m minidl.cli bench --compare-torch --device cuda --repeats 10
MINIDL_CONV=im2col step vgg-vs-cudnn-im2col 120 \
    "$py" -m minidl.cli bench --compare-torch --device cuda --repeats 10 --sizes 224,512
step lesson-04 90 "$py" lessons/04_inside_the_kernels.py --device cuda --quick
if [ -n "${MINIDL_WEIGHTS:-}" ]; then
    step stylize-512 150 "$py" -m minidl.cli stylize grace_hopper starry_night --size 512 \
        --iterations 100 --device cuda --seed 0 -o "$out/stylize_cuda_512.png" \
        --log "$out/stylize_cuda_512.json"
fi
echo "=== $failed step(s) failed" | tee -a "$log"
exit "$failed"
