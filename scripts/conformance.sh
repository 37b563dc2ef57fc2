#!/usr/bin/env bash
# Conformance run: se-inject on a zoo of full-size models from three exporters, every output
# checked by onnx, onnxruntime, OpenVINO and tract.
#
#   scripts/conformance.sh            the whole zoo (about 45 minutes on 2 cores)
#   scripts/conformance.sh --quick    resnet18 (TorchScript), mobilenet_v2 (dynamo), Keras MobileNetV2
#   scripts/conformance.sh --only resnet50:dynamo,keras_DenseNet121   the models named
#   scripts/conformance.sh --render   results.md and the README's table again from results.json
#
# Needs Python 3.11 (PYTHON, default python3), cargo and the network (PyPI). Everything it
# downloads or exports goes to the work directory, SE_CONFORMANCE_DIR (default
# ~/.cache/se-inject-conformance): venv/ (the pinned packages of scripts/requirements.txt),
# models/ (exports, reused by the next run), runs/ (outputs, deleted after their checks).
# Results: conformance/results.md and conformance/results.json in the repository (--quick writes
# results-quick.md / .json).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${SE_CONFORMANCE_DIR:-$HOME/.cache/se-inject-conformance}
python=${PYTHON:-python3}
torch_index=${SE_CONFORMANCE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
mkdir -p "$work"
work=$(cd "$work" && pwd)

# The venv, created once and reinstalled when requirements.txt changes.
venv=$work/venv
stamp=$venv/.requirements
if ! cmp -s "$repo/scripts/requirements.txt" "$stamp" 2>/dev/null; then
  echo "creating $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  extra=()
  if "$venv/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
    "$torch_index/torch/" >/dev/null 2>&1; then
    extra=(--extra-index-url "$torch_index")
  else
    echo "$torch_index is not reachable: torch comes from PyPI (with its CUDA libraries)" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --no-cache-dir "${extra[@]}" \
    -r "$repo/scripts/requirements.txt"
  cp "$repo/scripts/requirements.txt" "$stamp"
fi

(cd "$repo" && cargo build --release --quiet)

exec "$venv/bin/python" "$repo/scripts/conformance.py" \
  --bin "$repo/target/release/se-inject" --work "$work" --out "$repo/conformance" "$@"
