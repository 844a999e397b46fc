# Sourced by the benchmarks that measure a PyTorch peer: sets `python` to an interpreter with
# torch, numpy and safetensors: SCULPT_TORCH_PYTHON, or .venv-tools (tools/requirements.txt),
# created when missing.
python=${SCULPT_TORCH_PYTHON:-.venv-tools/bin/python}
if [[ ! -x $python ]]; then
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install --quiet -r tools/requirements.txt
  python=.venv-tools/bin/python
fi
