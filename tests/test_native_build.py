"""The native build: CMake builds fer_edge._C without CUDA/TensorRT, setup.py degrades without
CMake, and a built plugin library depends on nothing from TensorRT but the runtime's entry points.

The plugin-library checks run on the libraries named by ``$FER_EDGE_PLUGIN_LIBS`` (``cpp/ci_checks.sh``
builds them against the TensorRT 10.3 and 11.1 headers and sets it) or on the packaged one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# C entry points libnvinfer exports that a plugin library may call; everything else TensorRT
# offers is reached through virtual calls on objects it hands over, which needs no symbol.
TENSORRT_RUNTIME_ENTRY_POINTS = {"getPluginRegistry", "getLogger", "getInferLibVersion"}
TENSORRT_SYMBOL = re.compile(r"nvinfer1::|nvonnxparser|^createInfer|^createNvOnnxParser|^getPluginRegistry$|"
                             r"^getLogger$|^getInferLib|^initLibNvInferPlugins$|^getBuilderPluginRegistry$")
EXPORTED = {"getCreators", "setLoggerFinder", "ferEdgePluginVersion"}


def plugin_libraries() -> list[Path]:
    listed = [Path(p) for p in os.environ.get("FER_EDGE_PLUGIN_LIBS", "").split(os.pathsep) if p]
    if not listed:
        from fer_edge.plugins import plugin_library_path

        packaged = plugin_library_path()
        listed = [packaged] if packaged is not None else []
    return listed


def dynamic_symbols(lib: Path, *flags: str) -> list[tuple[str, str]]:
    """(type letter, demangled name with any @VERSION) of `nm -D -C` for the given filter flags."""
    out = subprocess.run(["nm", "-D", "-C", *flags, str(lib)], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(maxsplit=2) if line[:1] != " " else line.split(maxsplit=1)
        kind, name = (parts[1], parts[2]) if len(parts) == 3 else (parts[0], parts[1])
        rows.append((kind, name))
    return rows


needs_libs = pytest.mark.skipif(
    not plugin_libraries() or shutil.which("nm") is None,
    reason="no plugin library built here (run `bash cpp/ci_checks.sh`, or build with CUDA and TensorRT_ROOT) "
    "or nm missing",
)


@needs_libs
@pytest.mark.parametrize("lib", plugin_libraries(), ids=lambda p: p.parent.parent.name)
def test_undefined_tensorrt_symbols_are_runtime_entry_points(lib: Path) -> None:
    undefined = dynamic_symbols(lib, "--undefined-only")
    # a versioned symbol (name@GLIBC_2.2.5, @CXXABI_1.3, ...) comes from the C/C++ runtime
    unversioned = {name for kind, name in undefined if "@" not in name and kind != "w"}
    assert unversioned == unversioned & TENSORRT_RUNTIME_ENTRY_POINTS, (
        f"{lib.name} needs symbols no TensorRT runtime provides: {sorted(unversioned - TENSORRT_RUNTIME_ENTRY_POINTS)}"
    )
    tensorrt = {name.split("@")[0] for _, name in undefined if TENSORRT_SYMBOL.search(name.split("@")[0])}
    assert tensorrt <= TENSORRT_RUNTIME_ENTRY_POINTS, sorted(tensorrt)
    assert "getPluginRegistry" in tensorrt, "creators must register on load (REGISTER_TENSORRT_PLUGIN)"


@needs_libs
@pytest.mark.parametrize("lib", plugin_libraries(), ids=lambda p: p.parent.parent.name)
def test_exports_only_the_dynamic_loading_entry_points(lib: Path) -> None:
    exported = {name for kind, name in dynamic_symbols(lib, "--defined-only") if kind in "TtWw"}
    assert EXPORTED <= exported
    assert not [n for n in exported if "fer_edge::" in n], "C++ internals must stay hidden (visibility)"


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("c++") is None, reason="cmake or c++ missing")
def test_cmake_cpu_only_build_gives_a_working_C(tmp_path: Path) -> None:
    """Machines without nvcc/TensorRT still get the CPU reference module."""
    out = tmp_path / "pkg"
    configure = [
        "cmake", "-S", str(REPO), "-B", str(tmp_path / "b"), "-DFER_EDGE_CUDA=OFF", "-DFER_EDGE_TENSORRT=OFF",
        f"-DFER_EDGE_OUTPUT_DIR={out}", f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Debug",  # no LTO: quicker
    ]
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path / "b"), "--parallel", "2"], check=True, capture_output=True)
    assert not list(out.glob("libfer_edge_plugins*")), "plugin library must be skipped without CUDA/TensorRT"
    (built,) = out.glob("_C*.so")
    probe = (
        "import importlib.util, numpy as np, sys\n"
        f"spec = importlib.util.spec_from_file_location('_C', {str(built)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "y = m.simam(np.ones((1, 1, 1, 1), np.float32), 1e-4)\n"
        "print(m.TENSORRT_HEADERS_VERSION == '', float(y[0, 0, 0, 0]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    flag, value = result.stdout.split()
    assert flag == "True" and abs(float(value) - 1 / (1 + 2.718281828459045**-0.5)) < 1e-6


def test_setup_without_cmake_still_builds_the_sdk(tmp_path: Path) -> None:
    """No CMake on the PATH: build_ext warns and succeeds, leaving the pure-Python SDK."""
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "fer_edge").mkdir()
    for name in ("__init__.py", "_version.py"):
        shutil.copy(REPO / "fer_edge" / name, tmp_path / "fer_edge" / name)
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"], check=False, cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PATH": str(empty_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "cmake not found" in result.stderr
    assert not list((tmp_path / "fer_edge").glob("_C*"))
