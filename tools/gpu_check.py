"""Everything this repository cannot check without a GPU, in one run with one JSON report.

Run through ``tools/gpu_check.sh`` on a machine with an NVIDIA GPU (never in CI). Steps, each
recorded in the report with its time, result and any reason it was skipped:

1. ``kernels``: the CUDA kernels built with nvcc into a small C library
   (``cpp/tests/kernelCheck.cu``) and run on the GPU against the CPU reference
   (``fer_edge.plugins``, the same math headers) and float64: max error and kernel time per shape,
   FP32 and FP16.
2. ``tensorrt``: where TensorRT imports, FP32/FP16/INT8 engines of every shipped model package,
   each run against ONNX Runtime FP32 on FER+ valid faces (or synthetic faces where FER+ is absent):
   top-1 agreement, accuracy, max |logit difference|.
3. ``pytest``: the TensorRT tests that skip elsewhere (``-m tensorrt``), with their outcome.

Nothing is hidden: a step that cannot run says why; the exit status is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(1, 1, 1, 1), (2, 3, 7, 5), (4, 16, 56, 56), (32, 48, 48, 48), (32, 96, 24, 24), (32, 384, 3, 3),
          (8, 64, 12, 12), (1, 8, 64, 49)]
LAMBDA = 1e-4
BOUNDS = {"float32": 2e-5, "float16": 2e-2}  # max |gpu - reference| / max |reference|


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1), check=False, **kw)


def gpu_facts() -> dict[str, Any]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"nvidia_smi": None}
    out = _run([smi, "--query-gpu=name,compute_cap,driver_version,memory.total", "--format=csv,noheader"], 30)
    return {"nvidia_smi": out.stdout.strip() or out.stderr.strip()}


# ---------------------------------------------------------------- kernels

def _float64_simam(x: np.ndarray, lam: float) -> np.ndarray:
    x = x.astype(np.float64)
    n = max(x.shape[2] * x.shape[3] - 1, 1)
    d2 = (x - x.mean(axis=(2, 3), keepdims=True)) ** 2
    return x / (1 + np.exp(-(d2 / (4 * (d2.sum(axis=(2, 3), keepdims=True) / n + lam)) + 0.5)))


def _float64_cc(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, q, k, v = (a.astype(np.float64) for a in (x, q, k, v))
    logits = (k * x.mean(axis=(2, 3), keepdims=True) + q).reshape(*x.shape[:2], -1)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    return x + (w / w.sum(-1, keepdims=True)).reshape(x.shape) * v


def _build_kernel_library(work: Path, deadline: Deadline) -> Path:
    cuda_home = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    nvcc = cuda_home / "bin" / "nvcc"
    if not nvcc.is_file():
        raise RuntimeError(f"nvcc not found at {nvcc} (set CUDA_HOME)")
    arch = os.environ.get("FER_EDGE_GPU_ARCH", "native")
    lib = work / "libfer_edge_kernel_check.so"
    cmd = [str(nvcc), "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC", f"-arch={arch}", "-I", str(REPO / "cpp"),
           str(REPO / "cpp/tests/kernelCheck.cu"), str(REPO / "cpp/simamPlugin/simamKernel.cu"),
           str(REPO / "cpp/ccAttentionPlugin/ccAttentionKernel.cu"), "-o", str(lib)]
    out = _run(cmd, deadline.left())
    if out.returncode != 0:
        raise RuntimeError(f"nvcc failed: {out.stderr[-2000:]}")
    return lib


def check_kernels(work: Path, deadline: Deadline) -> dict[str, Any]:
    lib = ctypes.CDLL(str(_build_kernel_library(work, deadline)))
    fn = lib.ferEdgeKernelCheck
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_longlong,
                   ctypes.c_longlong, ctypes.c_float, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_char_p,
                   ctypes.c_int]
    try:
        from fer_edge.plugins import cc_attention_reference, simam_reference
    except ImportError:
        simam_reference = cc_attention_reference = None  # type: ignore[assignment]
    rng = np.random.default_rng(0)
    rows, ok = [], True
    for op, name in ((0, "SimAM_TRT"), (1, "CCAttention_TRT")):
        for shape in SHAPES:
            if deadline.left() < 60:
                rows.append({"op": name, "shape": shape, "skipped": "time budget"})
                continue
            inputs32 = [rng.normal(0, 2, shape).astype(np.float32) for _ in range(1 if op == 0 else 4)]
            for dtype in (np.float32, np.float16):
                inputs = [a.astype(dtype) for a in inputs32]
                seen = [a.astype(np.float32) for a in inputs]  # what the kernel reads
                out = np.empty(shape, dtype)
                ptrs = (ctypes.c_void_p * 4)(*[a.ctypes.data for a in inputs])
                ms, err = ctypes.c_float(0), ctypes.create_string_buffer(512)
                planes, hw = shape[0] * shape[1], shape[2] * shape[3]
                status = fn(op, int(dtype == np.float16), ptrs, out.ctypes.data, planes, hw, LAMBDA, 20, ctypes.byref(ms),
                            err, 512)
                row: dict[str, Any] = {"op": name, "shape": list(shape), "dtype": np.dtype(dtype).name}
                if status != 0:
                    row["error"] = err.value.decode(errors="replace")
                    ok = False
                    rows.append(row)
                    continue
                exact = _float64_simam(seen[0], LAMBDA) if op == 0 else _float64_cc(*seen)
                scale = max(float(np.abs(exact).max()), 1e-30)
                row["max_rel_err_vs_float64"] = float(np.abs(out.astype(np.float64) - exact).max() / scale)
                if simam_reference is not None:
                    ref = simam_reference(inputs[0], LAMBDA) if op == 0 else cc_attention_reference(*inputs)
                    row["max_abs_diff_vs_cpu_reference"] = float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max())
                row["kernel_ms"] = round(float(ms.value), 4)
                row["pass"] = row["max_rel_err_vs_float64"] <= BOUNDS[row["dtype"]]
                ok = ok and row["pass"]
                rows.append(row)
    return {"pass": ok, "bounds": BOUNDS, "results": rows}


# ---------------------------------------------------------------- TensorRT engines

def _plugin_library(work: Path, trt_version: str, deadline: Deadline) -> dict[str, Any]:
    """The plugin library: the packaged one, $FER_EDGE_PLUGIN_LIBRARY, or one built here now."""
    from fer_edge.plugins import plugin_library_path

    found = plugin_library_path()
    if found is not None:
        return {"path": str(found), "built_here": False}
    major_minor = ".".join(trt_version.split(".")[:2])
    candidates = [os.environ.get("TensorRT_ROOT", ""), "/usr", "/usr/local/tensorrt"]
    shared = REPO.parent / "shared" / "third_party" / "tensorrt-headers"
    candidates += [str(p) for p in sorted(shared.glob(f"{major_minor}*"))] if shared.is_dir() else []
    root = next((c for c in candidates if c and (list(Path(c).glob("include/NvInferVersion.h"))
                                                 or list(Path(c).glob("include/*/NvInferVersion.h")))), None)
    if root is None:
        return {"path": None, "reason": f"no TensorRT {major_minor} headers found (set TensorRT_ROOT)"}
    build = work / "plugins"
    configure = _run(["cmake", "-S", str(REPO), "-B", str(build), f"-DTensorRT_ROOT={root}", "-DFER_EDGE_PYTHON_MODULE=OFF",
                      "-DCMAKE_CUDA_ARCHITECTURES=native", "-DCMAKE_BUILD_TYPE=Release"], deadline.left())
    if configure.returncode != 0:
        return {"path": None, "reason": f"cmake configure failed: {configure.stdout[-1500:]}{configure.stderr[-1500:]}"}
    made = _run(["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 2)], deadline.left())
    lib = build / "fer_edge" / "libfer_edge_plugins.so"
    if made.returncode != 0 or not lib.is_file():
        return {"path": None, "reason": f"cmake build failed: {made.stdout[-1500:]}{made.stderr[-1500:]}"}
    os.environ["FER_EDGE_PLUGIN_LIBRARY"] = str(lib)
    return {"path": str(lib), "built_here": True, "headers": root}


def _shipped_packages() -> list[Path]:
    """FP32 portable ONNX packages and training checkpoints shipped inside fer_edge/data."""
    found = []
    for sidecar in sorted((REPO / "fer_edge" / "data").rglob("*.json")):
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if data.get("schema") != "fer_edge.package/1":
            continue
        if (data.get("format") == "onnx" and data.get("precision") == "fp32" and data.get("graph_form") == "portable") \
                or data.get("format") == "torch":
            found.append(sidecar)
    return found


def _faces(spec: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    from fer_edge.builder.calibration import ferplus_root, labelled_faces, parity_faces

    root = ferplus_root()
    if root is not None and (root / "FER2013Valid").is_dir():
        faces, labels = labelled_faces(root / "FER2013Valid", spec, num_classes, limit=1024)
        return faces, labels, "FER+ valid (first 1024 strict-majority faces)"
    faces, origin = parity_faces(spec, count=64)
    return faces, None, f"{origin} faces (FER+ not found: set FER_EDGE_FERPLUS)"


def check_tensorrt(work: Path, deadline: Deadline) -> dict[str, Any]:
    try:
        import tensorrt as trt
    except ImportError as exc:
        return {"skipped": f"TensorRT is not importable here: {exc}"}
    from fer_edge.builder.calibration import ferplus_root
    from fer_edge.builder.pipeline import build
    from fer_edge.engines.resolve import load_engine

    report: dict[str, Any] = {"tensorrt": trt.__version__, "plugin_library": _plugin_library(work, trt.__version__, deadline),
                              "models": []}
    ok = True
    calib = ferplus_root()
    for sidecar in _shipped_packages():
        kind = json.loads(sidecar.read_text())["format"]
        reference, _ = load_engine(str(sidecar), backend="onnxruntime" if kind == "onnx" else "torch")
        for precision in ("fp32", "fp16", "int8"):
            row: dict[str, Any] = {"package": sidecar.name, "precision": precision}
            report["models"].append(row)
            if deadline.left() < 120:
                row["skipped"] = "time budget"
                continue
            model = str(sidecar.with_suffix(".pt")) if kind == "torch" else str(sidecar)
            out = work / f"{sidecar.stem}_{precision}.engine"
            start = time.perf_counter()
            try:
                package = build(model, precision, "tensorrt", str(out), batch="1:8:32",
                                calib_dir=str(calib / "FER2013Train") if calib and precision == "int8" else None,
                                calib_size=512, log=lambda _: None)
            except Exception as exc:  # noqa: BLE001 -- report every failure, keep going
                row["error"] = f"{type(exc).__name__}: {exc}"
                ok = ok and "strongly typed" in str(exc)  # FP16 on TensorRT 11 is refused by design
                continue
            row["build_s"] = round(time.perf_counter() - start, 1)
            row["graph_form"] = package.sidecar.graph_form
            engine, _ = load_engine(str(package.sidecar_path), backend="tensorrt")
            faces, labels, origin = _faces(engine.input_spec, len(engine.classes))
            got, want = engine.infer(faces), reference.infer(faces)
            row.update(faces=origin, top1_agreement_vs_onnxruntime_fp32=float((got.argmax(1) == want.argmax(1)).mean()),
                       max_abs_logit_diff=float(np.abs(got - want).max()))
            if labels is not None:
                row["accuracy"] = float((got.argmax(1) == labels).mean())
                row["accuracy_onnxruntime_fp32"] = float((want.argmax(1) == labels).mean())
            floor = {"fp32": 0.995, "fp16": 0.99, "int8": 0.95}[precision]
            row["pass"] = row["top1_agreement_vs_onnxruntime_fp32"] >= floor
            ok = ok and row["pass"]
            getattr(engine, "close", lambda: None)()
    report["pass"] = ok
    return report


# ---------------------------------------------------------------- pytest

def run_pytest(work: Path, deadline: Deadline) -> dict[str, Any]:
    junit = work / "pytest.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "tensorrt", f"--junitxml={junit}", "tests"]
    out = _run(cmd, deadline.left() - 10, cwd=REPO)
    cases = []
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome, detail = "passed", ""
            for kind in ("failure", "error", "skipped"):
                element = case.find(kind)
                if element is not None:
                    outcome, detail = kind, (element.get("message") or "")[:500]
            cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome, "detail": detail})
    counts = {kind: sum(c["outcome"] == kind for c in cases) for kind in ("passed", "failure", "error", "skipped")}
    return {"returncode": out.returncode, "pass": out.returncode in (0, 5), "counts": counts, "cases": cases,
            "tail": out.stdout[-3000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gpu_check.json")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (default 7.5 min)")
    args = parser.parse_args()
    deadline = Deadline(args.budget)
    report: dict[str, Any] = {"schema": "fer_edge.gpu_check/1", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "host": platform.platform(), "python": sys.version.split()[0], **gpu_facts(), "steps": {}}
    ok = True
    with tempfile.TemporaryDirectory(prefix="fer_edge_gpu_check_") as tmp:
        for name, step in (("kernels", check_kernels), ("tensorrt", check_tensorrt), ("pytest", run_pytest)):
            start = time.perf_counter()
            try:
                result = step(Path(tmp), deadline)
            except Exception as exc:  # noqa: BLE001 -- a broken step is reported, the others still run
                result = {"pass": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            result["seconds"] = round(time.perf_counter() - start, 1)
            report["steps"][name] = result
            ok = ok and result.get("pass", True) is not False
            print(f"gpu_check: {name}: {'skipped: ' + result['skipped'] if 'skipped' in result else result.get('pass')} "
                  f"({result['seconds']} s)", file=sys.stderr, flush=True)
    report["pass"] = ok
    path = Path(args.out) / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"gpu_check: report {path}; overall {'PASS' if ok else 'FAIL'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
