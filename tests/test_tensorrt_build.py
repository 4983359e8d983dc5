"""Real TensorRT engine builds (FP32/FP16/INT8 Q/DQ, plugin form); skipped where TensorRT or a GPU is absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorrt

if importlib.util.find_spec("tensorrt") is None:
    pytest.skip("TensorRT is not installed here (pip install fer_edge[tensorrt] on an NVIDIA GPU machine); "
                "engine builds are not verified on this machine", allow_module_level=True)


@pytest.fixture(scope="module")
def gpu() -> dict:
    from fer_edge.builder.tensorrt_builder import device_info
    from fer_edge.errors import BackendUnavailableError

    try:
        return device_info()
    except (ImportError, BackendUnavailableError) as exc:
        pytest.skip(f"no usable CUDA GPU / cuda-python for TensorRT builds: {exc}")


@pytest.mark.filterwarnings("ignore:building 'simam_resnet' from the zoo")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_package_builds_and_records_the_gpu(gpu: dict, ferplus_dir: Path, tmp_path: Path,
                                                   precision: str) -> None:
    import tensorrt as trt

    from fer_edge.builder.pipeline import build
    from fer_edge.errors import ExportError
    from fer_edge.package import load_package
    from fer_edge.trt_compat import TrtVersion, api_for

    if precision == "fp16" and api_for(trt.__version__).strongly_typed_only:
        with pytest.raises(ExportError, match="strongly typed"):  # never an FP32 engine labelled fp16
            build("simam_resnet", precision, "tensorrt", str(tmp_path / "m.engine"), log=lambda _: None)
        assert not (tmp_path / "m.engine").exists()
        return
    package = build("simam_resnet", precision, "tensorrt", str(tmp_path / "m.engine"), batch="1:4:8", weights="random",
                    calib_dir=str(ferplus_dir / "FER2013Valid"), calib_size=64, log=lambda _: None)
    side = load_package(package.sidecar_path).sidecar
    assert side.format == "tensorrt" and side.precision == precision
    assert side.tensorrt["gpu_name"] == gpu["gpu_name"]
    assert TrtVersion.parse(side.tensorrt["version"]) == TrtVersion.parse(trt.__version__)  # "10.1" != "10.13"
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(package.model_path.read_bytes())
    assert engine is not None and engine.get_tensor_profile_shape("input", 0)[2][0] == 8
