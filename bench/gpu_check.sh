#!/usr/bin/env bash
# Every GPU benchmark in one call, then one table: the figures, their ratios to the plain PyTorch
# reference measured in the same run, the targets, and the study's training time.
#
#   bash bench/gpu_check.sh                 # on an H100/H200: the study's sizes, about 5-7 minutes
#   bash bench/gpu_check.sh --device cpu    # smoke run: tiny sizes, one step per round (~1 minute, 2 cores)
#   OUT=/some/dir bash bench/gpu_check.sh   # where the JSON results and the tables go (default bench/results)
#   WHEELS=wheels bash bench/gpu_check.sh   # first installs hydra-core and omegaconf from these wheels if missing
#
# Needs: Python 3.10+ with torch, torchvision, transformers (5.x), peft, accelerate, safetensors,
# scikit-learn, numpy, pyyaml, tqdm, pillow, jinja2, and hydra-core and omegaconf (each benchmark
# composes its settings from conf/ as `dvc exp run` does). A GPU machine without network may lack
# the last two (they come with DVC here): carry them as wheels, made where the project is installed,
#   pip wheel --no-deps -w wheels hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
# (antlr4-python3-runtime is an sdist on PyPI: pip wheel builds it), and run with WHEELS=wheels.
# Not needed: dvc, dvclive, the model hub, network, the data sets: every model is built with random
# weights through vqalab's own code, which is imported from src/ (PYTHONPATH), not installed.
# flash-attn is used for qwen2vl when it is installed, else PyTorch's SDPA.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --device=*) device="${1#*=}"; shift ;;
    *) echo "usage: $0 [--device cuda|cpu]" >&2; exit 2 ;;
  esac
done
out="${OUT:-bench/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python=${PYTHON:-python3}

if [ -n "${WHEELS:-}" ] && ! "$python" -c "import hydra, omegaconf" 2>/dev/null; then
  "$python" -m pip install --quiet --no-index --find-links "$WHEELS" hydra-core omegaconf
fi
"$python" - <<'EOF'
import importlib.util, sys
needed = ["torch", "torchvision", "transformers", "peft", "accelerate", "safetensors", "sklearn", "numpy", "yaml",
          "tqdm", "PIL", "jinja2", "hydra", "omegaconf"]
missing = [m for m in needed if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages {missing}: carry them as wheels (see the header; WHEELS=dir "
             f"installs hydra-core and omegaconf from one)")
EOF

# resnet_bert fine-tuned (fp32 and bf16, each beside the reference) and on cached features; the
# other families' paper profiles, for the study estimate. Each variant: -S values over the paper
# profile on VQA-RAD (conf/strategy/ holds the strategies).
variants=("model=resnet_bert strategy=full train.precision=fp32" "model=resnet_bert strategy=full train.precision=bf16"
          "model=resnet_bert strategy=frozen train.precision=fp32" "model=pubmedclip" "model=vilt")
if [ "$device" = cpu ]; then
  # Tiny sizes, a few questions, every code path once: the figures mean nothing, the table's shape does.
  paper_args=(--sizes tiny --device cpu --batch-sizes 4 --warmup 1 --steps 1 --repeats 3
              --variants "${variants[@]}")
  qwen_args=(--sizes tiny --device cpu --image-px 56 --batch-size 2 --warmup 1 --steps 1 --repeats 3)
else
  if ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA device (use --device cpu for a smoke run)" >&2; exit 1
  fi
  # The tiny recipe's batch (64, the cached head) and the paper profile's (256).
  paper_args=(--sizes paper --device "$device" --warmup 5 --steps 10 --repeats 3 --variants "${variants[@]}")
  qwen_args=(--sizes 2b --device "$device" --batch-size 16 --warmup 2 --steps 5 --repeats 3)
fi

start=$SECONDS
echo "== paper_gpu.py (classifiers + reference)"
"$python" bench/paper_gpu.py "${paper_args[@]}" --out "$out/paper_gpu.json"
echo "== qwen2vl_gpu.py ($((SECONDS - start)) s so far)"
"$python" bench/qwen2vl_gpu.py "${qwen_args[@]}" --out "$out/qwen2vl_gpu.json"
echo "== summary ($((SECONDS - start)) s in all)"
"$python" bench/gpu_report.py --paper "$out/paper_gpu.json" --qwen2vl "$out/qwen2vl_gpu.json" \
  --out "$out/gpu_check.json"
