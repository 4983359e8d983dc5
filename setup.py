"""Packaging for fer_edge.

The runtime core (numpy, opencv, onnxruntime) installs without torch; heavy stacks are extras.
The native part (pybind11 module ``fer_edge._C`` and the TensorRT plugin library) is built with
the top-level CMakeLists.txt by :class:`CMakeBuild` when CMake and a C++ compiler exist; without
them the SDK still installs and ``fer_edge.plugins`` says what is missing.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version: dict[str, str] = {}
exec((ROOT / "fer_edge" / "_version.py").read_text(), version)

TORCH = "torch==2.13.0"  # the CPU build on disk here; an unpinned torch pulls a multi-GB CUDA build

extras = {
    "train": [TORCH, "tqdm>=4.60", "matplotlib>=3.7"],
    "build": ["onnx>=1.15", "onnxsim>=0.4.36", "onnx-graphsurgeon>=0.5", "onnxruntime>=1.17"],
    "tensorrt": ["tensorrt>=8.5", "cuda-python>=12"],
    "test": ["pytest>=7", "scikit-image>=0.22", "psutil>=5.9", "mypy>=1.8", "ruff>=0.4"],
}

setup(
    name="fer_edge",
    version=version["__version__"],
    description="Edge deployment SDK for facial-expression recognition: models, export, INT8, TensorRT, runtime",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["fer_edge", "fer_edge.*"]),
    package_data={"fer_edge": ["data/*", "data/**/*", "py.typed", "*.pyi"]},
    include_package_data=True,
    install_requires=["numpy>=1.23", "opencv-python-headless>=4.8", "onnxruntime>=1.17", "tqdm>=4.60"],
    extras_require=extras,
    entry_points={"console_scripts": ["fer-edge=fer_edge.cli:main"]},
    zip_safe=False,
)
