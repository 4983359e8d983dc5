"""Packaging for fer_edge.

The runtime core (numpy, opencv, onnxruntime) installs without torch; heavy stacks are extras.
The native part (pybind11 module ``fer_edge._C`` and the TensorRT plugin library) is built with
the top-level CMakeLists.txt by :class:`CMakeBuild` when CMake and a C++ compiler exist; without
them the SDK still installs and ``fer_edge.plugins`` says what is missing.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
version: dict[str, str] = {}
exec((ROOT / "fer_edge" / "_version.py").read_text(), version)

TORCH = "torch==2.13.0"  # the CPU build on disk here; an unpinned torch pulls a multi-GB CUDA build

extras = {
    "train": [TORCH, "tqdm>=4.60", "matplotlib>=3.7"],
    "build": ["onnx>=1.15", "onnxsim>=0.4.36", "onnx-graphsurgeon>=0.5", "onnxruntime>=1.17"],
    "tensorrt": ["tensorrt>=8.5", "cuda-python>=12"],
    "serve": ["aiohttp>=3.9"],  # fer-edge serve (fer_edge/serve/): server, WebSocket and the client tests use
    "triton": ["tritonclient[http]>=2.40"],  # the Triton engine backend (fer_edge/engines/triton.py)
    # tritonclient: the tests parse exported config.pbtxt files with its ModelConfig schema
    "test": ["pytest>=7", "pybind11>=2.12", "scikit-image>=0.22", "psutil>=5.9", "mypy>=1.8", "ruff>=0.4",
             "tritonclient[http]>=2.40", "aiohttp>=3.9"],
}



class CMakeExtension(Extension):
    """An extension CMake builds (top-level CMakeLists.txt); optional, so a failed build is skipped."""

    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[], optional=True)


class CMakeBuild(build_ext):
    """Build ``fer_edge._C`` (and ``libfer_edge_plugins.so`` when CUDA and TensorRT headers exist).

    Missing CMake or a failing compile prints a warning and leaves the pure-Python SDK installable.
    Extra CMake arguments come from ``FER_EDGE_CMAKE_ARGS`` (e.g. ``-DCMAKE_CUDA_ARCHITECTURES=87``);
    TensorRT headers are found through ``TensorRT_ROOT`` or the standard paths.
    """

    def build_extension(self, ext: Extension) -> None:
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        if shutil.which("cmake") is None:
            print("fer_edge: cmake not found; skipping fer_edge._C and the plugin library", file=sys.stderr)
            return
        import pybind11

        build_dir = Path(self.build_temp).resolve() / "cmake"
        args = [
            f"-DFER_EDGE_OUTPUT_DIR={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            "-DCMAKE_BUILD_TYPE=Release",
            *(["-G", "Ninja"] if shutil.which("ninja") else []),
            *shlex.split(os.environ.get("FER_EDGE_CMAKE_ARGS", "")),
        ]
        try:
            subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
            subprocess.run(["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 1)], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"fer_edge: native build failed ({exc}); the SDK installs without fer_edge._C", file=sys.stderr)

    def run(self) -> None:
        super().run()
        if self.inplace:  # editable installs: setuptools copies _C back, the plugin library we copy
            for lib in (Path(self.build_lib) / "fer_edge").glob("libfer_edge_plugins.*"):
                self.copy_file(str(lib), str(ROOT / "fer_edge" / lib.name))


setup(
    name="fer_edge",
    version=version["__version__"],
    description="Edge deployment SDK for facial-expression recognition: models, export, INT8, TensorRT, runtime",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # export recipes (export/) and calibration manifests (calibration/) ship inside the package
    packages=find_packages(include=["fer_edge", "fer_edge.*"]) + ["fer_edge.recipes", "fer_edge.calibration_sets"],
    package_dir={"fer_edge.recipes": "export", "fer_edge.calibration_sets": "calibration"},
    package_data={"fer_edge": ["data/*", "data/**/*", "py.typed", "*.pyi"], "fer_edge.recipes": ["*.json"],
                  "fer_edge.calibration_sets": ["*.json"], "fer_edge.serve": ["static/*"]},  # the serve page, no CDN
    include_package_data=True,
    install_requires=["numpy>=1.23", "opencv-python-headless>=4.8", "onnxruntime>=1.17", "tqdm>=4.60"],
    extras_require=extras,
    entry_points={"console_scripts": ["fer-edge=fer_edge.cli:main"]},
    ext_modules=[CMakeExtension("fer_edge._C")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
