#!/usr/bin/env bash
# The GPU check of issue 13, for a machine with a CUDA GPU (none was available when it was
# written, so it has not been run): install the GPU extras, run the gpu-marked tests (CuPy and
# PyTorch on CUDA, including the core suite's `xp` parameters), then time `report` on the
# standard cases with NumPy, CuPy and PyTorch on CUDA. Output goes to stdout; paste the
# numbers into README.md and docs/PERFORMANCE.md.
#
#   bash benchmarks/gpu_check.sh            # cases 1 and 2 (~10 min)
#   CASES=1 bash benchmarks/gpu_check.sh    # case 1 only
set -uo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[cuda,torch,test]' || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch, cupy; print('torch', torch.__version__, torch.cuda.get_device_name(0)); print('cupy', cupy.__version__)"
python -m pytest -q -m gpu -rs
python benchmarks/bench_report.py --cases "${CASES:-1,2}" --reps 3 --backend numpy,cupy,torch:cuda
# The statistics recorder (issue 19): forward pass vs the two recording passes on the GPU,
# device memory against (C·P + P² + C)·8·2 bytes + one block (docs/PERFORMANCE.md).
python -m pip install -q -e '.[hf]' || exit 1
python benchmarks/bench_capture.py --device cuda --tokens 262144 --batch 32 --length 1024 --reps 3
