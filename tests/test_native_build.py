"""The native build: CMake builds fer_edge._C without CUDA/TensorRT, setup.py degrades without
CMake, and a built plugin library references no TensorRT symbol at all, so it loads in any process,
including one where TensorRT from pip loaded ``libnvinfer.so.10`` RTLD_LOCAL.

The plugin-library checks run on the libraries named by ``$FER_EDGE_PLUGIN_LIBS`` (``cpp/ci_checks.sh``
builds them against the TensorRT 8.5.3, 8.6.1, 10.3 and 11.1 headers and sets it) or on the packaged
one. The stub ``libnvinfer`` the loading tests build is ``cpp/tests/stubNvinfer.cpp``: it stands in
for TensorRT's C entry points only; nothing here runs TensorRT.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEADERS = Path(os.environ.get("FER_EDGE_TRT_HEADERS", REPO.parent / "shared" / "third_party" / "tensorrt-headers"))
TENSORRT_SYMBOL = re.compile(r"nvinfer1::|nvonnxparser|^createInfer|^createNvOnnxParser|^getPluginRegistry$|"
                             r"^getLogger$|^getInferLib|^initLibNvInferPlugins$|^getBuilderPluginRegistry$")
# entry points per plugin interface generation (pluginRegistry.cpp): 10+ is loaded only through
# IPluginRegistry::loadLibrary (setLoggerFinder, getCreators); 8.x registers on dlopen.
EXPORTED = {
    "IPluginV3": {"getCreators", "setLoggerFinder", "ferEdgePluginVersion", "ferEdgeTensorRTMajor"},
    "IPluginV2": {"ferEdgePluginVersion", "ferEdgeTensorRTMajor"},
}


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


def interface_of(lib: Path) -> str:
    exported = {name for kind, name in dynamic_symbols(lib, "--defined-only") if kind in "TtWw"}
    return "IPluginV3" if "getCreators" in exported else "IPluginV2"


def tensorrt_major_of(lib: Path) -> int:
    probe = f"import ctypes; print(ctypes.CDLL({str(lib)!r}).ferEdgeTensorRTMajor())"
    return int(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout)


needs_libs = pytest.mark.skipif(
    not plugin_libraries() or shutil.which("nm") is None,
    reason="no plugin library built here (run `bash cpp/ci_checks.sh`, or build with CUDA and TensorRT_ROOT) "
    "or nm missing",
)
needs_cxx = pytest.mark.skipif(shutil.which("c++") is None, reason="c++ missing")
LIB_IDS = {"ids": lambda p: p.parent.parent.name}


@needs_libs
@pytest.mark.parametrize("lib", plugin_libraries(), **LIB_IDS)
def test_references_no_tensorrt_symbol(lib: Path) -> None:
    undefined = dynamic_symbols(lib, "--undefined-only")
    # a versioned symbol (name@GLIBC_2.2.5, @CXXABI_1.3, ...) comes from the C/C++ runtime
    unversioned = sorted(name for kind, name in undefined if "@" not in name and kind != "w")
    assert unversioned == [], f"{lib.name} needs symbols from outside the C/C++ runtime: {unversioned}"
    tensorrt = sorted(name for _, name in undefined if TENSORRT_SYMBOL.search(name.split("@")[0]))
    assert tensorrt == [], f"{lib.name} would not load where libnvinfer is RTLD_LOCAL: {tensorrt}"
    needed = subprocess.run(["readelf", "-d", str(lib)], check=True, capture_output=True, text=True).stdout
    assert "libnvinfer" not in needed, "no NEEDED libnvinfer: pip ships only libnvinfer.so.10, found by no default path"


@needs_libs
@pytest.mark.parametrize("lib", plugin_libraries(), **LIB_IDS)
def test_exports_only_its_generations_entry_points(lib: Path) -> None:
    exported = {name for kind, name in dynamic_symbols(lib, "--defined-only") if kind in "TtWw"}
    interface = "IPluginV3" if tensorrt_major_of(lib) >= 10 else "IPluginV2"
    assert interface_of(lib) == interface
    assert exported & (EXPORTED["IPluginV3"] | {"getPluginCreators"}) == EXPORTED[interface], (
        "one registration mechanism per generation (NVIDIA documents static and dynamic as alternatives)")
    assert not [n for n in exported if "fer_edge::" in n], "C++ internals must stay hidden (visibility)"


def _build_stub(tmp_path: Path, major: int) -> Path:
    """cpp/tests/stubNvinfer.cpp as libnvinfer.so.<major> (8: with a recording registry, 8.6.1 headers)."""
    stub = tmp_path / f"libnvinfer.so.{major}"
    cmd = ["c++", "-std=c++17", "-shared", "-fPIC", f"-Wl,-soname,{stub.name}", "-I", str(REPO / "cpp"),
           str(REPO / "cpp" / "tests" / "stubNvinfer.cpp"), "-o", str(stub)]
    if major == 8:
        include = HEADERS / "8.6.1" / "include"
        if not include.is_dir():
            pytest.skip(f"TensorRT 8.6.1 headers not found under {HEADERS} (set FER_EDGE_TRT_HEADERS)")
        cmd[4:4] = ["-DFER_EDGE_STUB_V2", "-isystem", str(include), "-isystem", "/usr/local/cuda/include"]
    subprocess.run(cmd, check=True, capture_output=True)
    return stub


LOAD_PROBE = textwrap.dedent("""
    import ctypes, json, sys
    stub = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)   # how tensorrt_libs loads libnvinfer
    report = {}
    try:
        lib = ctypes.CDLL(sys.argv[2], mode=ctypes.RTLD_LOCAL)
    except OSError as exc:
        print(json.dumps({"loaded": False, "error": str(exc)})); sys.exit(0)
    report["loaded"] = True
    if hasattr(lib, "getCreators"):
        count = ctypes.c_int32(-1)
        lib.getCreators.restype = ctypes.c_void_p
        report["creators"] = count.value if lib.getCreators(ctypes.byref(count)) else None
    else:
        stub.stubRegisteredName.restype = ctypes.c_char_p
        report["registered"] = [stub.stubRegisteredName(i).decode() for i in range(stub.stubRegisteredCount())]
    print(json.dumps(report))
""")


def _load_next_to(stub: Path, lib: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(stub), str(lib)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


@needs_libs
@needs_cxx
@pytest.mark.parametrize("lib", plugin_libraries(), **LIB_IDS)
def test_loads_next_to_a_libnvinfer_loaded_rtld_local(lib: Path, tmp_path: Path) -> None:
    """TensorRT from pip: libnvinfer.so.10 only, loaded RTLD_LOCAL; then our library is dlopened."""
    major = tensorrt_major_of(lib)
    report = _load_next_to(_build_stub(tmp_path, 10 if major >= 10 else 8), lib)
    assert report["loaded"], report
    if major >= 10:
        assert report["creators"] == 2, "getCreators hands both creators to IPluginRegistry::loadLibrary"
    else:  # 8.x registers on load, into the registry of the libnvinfer it finds by soname (RTLD_NOLOAD)
        assert report["registered"] == ["SimAM_TRT", "CCAttention_TRT"]


@needs_cxx
def test_the_load_check_catches_an_undefined_getPluginRegistry(tmp_path: Path) -> None:
    """The failure this guards against, reproduced: a library that calls getPluginRegistry at load."""
    src = tmp_path / "bad.cpp"
    src.write_text('extern "C" void* getPluginRegistry();\nstatic void* const gRegistry = getPluginRegistry();\n'
                   'extern "C" void* badRegistry() { return gRegistry; }\n')
    bad = tmp_path / "libbad.so"
    subprocess.run(["c++", "-shared", "-fPIC", str(src), "-o", str(bad)], check=True, capture_output=True)
    report = _load_next_to(_build_stub(tmp_path, 10), bad)
    assert not report["loaded"] and "getPluginRegistry" in report["error"]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake missing")
def test_default_cuda_architectures_follow_the_nvcc_version(tmp_path: Path) -> None:
    """JetPack 5.1's CUDA 11.4 has no sm_89/90; CUDA 13 has no sm_72 (cmake/FerEdgeCudaArchitectures.cmake)."""
    script = tmp_path / "archs.cmake"
    script.write_text(f'include("{REPO / "cmake" / "FerEdgeCudaArchitectures.cmake"}")\n'
                      "foreach(v 11.4 11.8 12.2 12.6 13.0)\n"
                      "  fer_edge_default_cuda_architectures(${v} a)\n"
                      '  message("${v}=${a}")\n'
                      "endforeach()\n")
    out = subprocess.run(["cmake", "-P", str(script)], check=True, capture_output=True, text=True).stderr
    archs = dict(line.split("=") for line in out.split())
    assert archs["11.4"] == "72;75;80;86;87"
    assert archs["11.8"] == archs["12.2"] == archs["12.6"] == "72;75;80;86;87;89;90"
    assert archs["13.0"] == "75;80;86;87;89;90;110"
    old = tmp_path / "old.cmake"
    old.write_text(f'include("{REPO / "cmake" / "FerEdgeCudaArchitectures.cmake"}")\n'
                   "fer_edge_default_cuda_architectures(11.2 a)\n")
    refused = subprocess.run(["cmake", "-P", str(old)], check=False, capture_output=True, text=True)
    assert refused.returncode != 0 and "older than CUDA 11.4" in refused.stderr


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
