#!/usr/bin/env bash
# Type-check fer_edge's TensorRT code against tensorrt-stubs (10.13) without TensorRT installed.
# The stubs ship without py.typed and with a few syntax errors (FACTS.md): parameters named `in`,
# a non-default parameter after defaults in add_scale_nd, and an import of the missing
# tensorrt_libs. A repaired copy goes on MYPYPATH; errors inside tensorrt_bindings.* are ignored.
# Exits non-zero when mypy finds misuse (e.g. Builder.build_engine, removed in TensorRT 10).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STUBS_VERSION="${TENSORRT_STUBS_VERSION:-10.13.0.35.1}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python -m pip install --quiet --no-deps --target "$WORK/raw" "tensorrt-stubs==${STUBS_VERSION}"
mkdir -p "$WORK/stubs"
for pkg in tensorrt tensorrt_bindings; do
  src="$WORK/raw/$pkg-stubs"; [ -d "$src" ] || src="$WORK/raw/$pkg"
  [ -d "$src" ] && cp -r "$src" "$WORK/stubs/$pkg"
done
python - "$WORK/stubs" <<'PY'
import ast, re, sys
from pathlib import Path
for path in Path(sys.argv[1]).rglob("*.pyi"):
    text = path.read_text()
    text = re.sub(r"\bin\s*:", "in_:", text)                         # parameters named `in`
    text = re.sub(r"^.*import tensorrt_libs.*$", "", text, flags=re.M)  # missing native package
    lines = text.splitlines()
    for _ in range(50):                                                # non-default after default
        try:
            ast.parse("\n".join(lines))
            break
        except SyntaxError as err:
            line = lines[err.lineno - 1]
            if "def " not in line:
                raise
            lines[err.lineno - 1] = re.sub(r"(\w+: [\w.\[\], ]+?)(?=[,)])(?!\s*=)", r"\1 = ...", line.split("->")[0]) \
                + ("->" + line.split("->", 1)[1] if "->" in line else "")
    path.write_text("\n".join(lines) + "\n")
PY
FILES=("$ROOT/fer_edge/builder/tensorrt_builder.py" "$ROOT/fer_edge/trt_compat.py")
[ -f "$ROOT/fer_edge/engines/tensorrt.py" ] && FILES+=("$ROOT/fer_edge/engines/tensorrt.py")
FILES+=("$@")  # extra files to check, e.g. a deliberately wrong one to prove the check bites
cat > "$WORK/mypy.ini" <<INI
[mypy]
python_version = 3.10
ignore_missing_imports = True
follow_imports = silent
[mypy-tensorrt_bindings.*]
ignore_errors = True
[mypy-tensorrt.*]
ignore_errors = True
INI
cd "$ROOT"
MYPYPATH="$WORK/stubs" python -m mypy --config-file "$WORK/mypy.ini" "${FILES[@]}"
