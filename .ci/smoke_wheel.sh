#!/usr/bin/env bash
# The wheel as a user gets it: built, installed into a fresh venv, used from outside the checkout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --no-deps -w "$work/dist" "$root"
wheel=$(ls "$work"/dist/convscope-*.whl)
# only convscope/ and its dist-info at the top of the wheel
tops=$(python3 -c "import sys, zipfile; print(' '.join(sorted({n.split('/')[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()})))" "$wheel")
case "$tops" in
  "convscope convscope-"*".dist-info") ;;
  *) echo "wheel installs unexpected top-level names: $tops" >&2; exit 1 ;;
esac
echo "wheel top-level names: $tops"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
cd "$work"  # outside the checkout
export PATH="$work/venv/bin:$PATH" QT_QPA_PLATFORM=offscreen
python -c "import convscope, sys; assert '$root' not in convscope.__file__, convscope.__file__"
convscope --version
python -m convscope --version
convscope train --epochs 1 --json --save seed.npz | tail -1
python -c "
from PIL import Image
from convscope.engine.data.datasets import load_mini
Image.fromarray(255 - load_mini().x_test[0]).save('digit.png')"
convscope predict --model seed.npz digit.png --json | tail -1
convscope eval --model seed.npz --json | tail -1
convscope gradcheck --json | tail -1
convscope screenshot --out window.png --steps 50
python -c "from PIL import Image; im = Image.open('window.png'); assert im.size[0] > 400, im.size"
convscope bench --quick --no-torch --json | tail -1
if convscope bench --quick --write-readme 2>err.txt; then
  echo "bench --write-readme ran from an installed copy" >&2; exit 1
fi
grep -q "installed copy" err.txt
echo "wheel smoke test passed"
