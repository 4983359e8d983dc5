"""``fer-edge export-triton``: repository layout, and every config.pbtxt parsed by Triton's own schema.

No Triton server runs here (no GPU, no docker): each generated ``config.pbtxt`` is parsed with
protobuf ``text_format`` into tritonclient's ``inference.ModelConfig`` (an unknown field or a
wrong enum fails the parse) and compared with the ONNX graph the repository ships.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import onnx
import pytest

from fer_edge.builder.triton_export import export_triton
from fer_edge.cli import main
from fer_edge.constants import EXPRESSIONS_7, SHIPPED_MODELS_DIR
from fer_edge.errors import ExportError, ModelNotFoundError, PackageError
from fer_edge.fileio import sha256_file
from fer_edge.package import BatchRange, InputSpec, Sidecar, load_package, write_package
from tests import triton_schema
from tests.tiny_package import make_package

SHIPPED_ONNX = sorted(p.name for p in SHIPPED_MODELS_DIR.glob("*.json") if load_package(p, verify=False).sidecar.format
                      == "onnx")


@pytest.fixture(scope="module")
def model_config_pb2() -> ModuleType:
    return triton_schema.model_config_pb2()


def onnx_dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def fake_engine(folder: Path, version: str = "8.6.1", plugin: bool = False):
    """An engine package whose plan bytes are a stand-in: the export copies them and never parses them."""
    path = folder / "fake.engine"
    path.write_bytes(b"stand-in for a serialized TensorRT plan")
    sidecar = Sidecar(model_id="tiny", variant="edge", classes=EXPRESSIONS_7, input=InputSpec(size=(48, 48)),
                      format="tensorrt", file=path.name, precision="fp16", batch=BatchRange(1, 8, 16),
                      graph_form="plugin" if plugin else "portable",
                      tensorrt={"version": version, "compute_capability": [8, 7], "gpu_name": "Orin"})
    return write_package(path, sidecar)


@pytest.mark.parametrize("name", SHIPPED_ONNX)
def test_shipped_packages_export_to_a_valid_repository(tmp_path: Path, model_config_pb2: ModuleType, name: str) -> None:
    package = load_package(SHIPPED_MODELS_DIR / name)
    done = export_triton(SHIPPED_MODELS_DIR / name, tmp_path / "repo")
    model_dir = tmp_path / "repo" / "fer"
    assert done.model_dir == model_dir
    assert sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*")) == \
        ["1", "1/model.onnx", "config.pbtxt", "labels.txt"]
    assert sha256_file(model_dir / "1" / "model.onnx") == package.sidecar.sha256
    config = triton_schema.parse(model_config_pb2, model_dir / "config.pbtxt")
    graph = onnx.load(str(model_dir / "1" / "model.onnx")).graph
    weights = {t.name for t in graph.initializer}
    (graph_input,) = [v for v in graph.input if v.name not in weights]
    graph_output = next(o for o in graph.output if o.name == package.sidecar.output_name)
    assert config.name == "fer" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == package.sidecar.batch.max
    assert isinstance(onnx_dims(graph_input)[0], str), "the batch dimension must be dynamic for max_batch_size > 0"
    (cfg_in,), (cfg_out,) = config.input, config.output
    # Triton's dims leave out the batch dimension when max_batch_size > 0
    assert cfg_in.name == graph_input.name and list(cfg_in.dims) == onnx_dims(graph_input)[1:]
    assert cfg_out.name == graph_output.name and list(cfg_out.dims) == onnx_dims(graph_output)[1:]
    assert cfg_in.data_type == model_config_pb2.TYPE_FP32 == cfg_out.data_type
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert (model_dir / cfg_out.label_filename).read_text().split() == list(package.sidecar.classes)


def test_options_reach_the_config(tmp_path: Path, model_config_pb2: ModuleType) -> None:
    package = make_package(tmp_path, max_batch=4)
    export_triton(package.sidecar_path, tmp_path / "repo", name="fer_tiny", max_batch=64, instances=3, gpus=[0, 2],
                  queue_delay_us=500)
    config = triton_schema.parse(model_config_pb2, tmp_path / "repo" / "fer_tiny" / "config.pbtxt")
    assert config.name == "fer_tiny" and config.max_batch_size == 64  # an ONNX with a dynamic batch takes any
    (group,) = config.instance_group
    assert group.count == 3 and list(group.gpus) == [0, 2]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    export_triton(package.sidecar_path, tmp_path / "repo", name="fer_cpu", cpu=True)
    cpu = triton_schema.parse(model_config_pb2, tmp_path / "repo" / "fer_cpu" / "config.pbtxt")
    assert cpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU and not cpu.instance_group[0].gpus
    assert (tmp_path / "repo" / "fer_tiny" / "config.pbtxt").is_file(), "other models in the repository are kept"


def test_engine_package_becomes_a_plan(tmp_path: Path, model_config_pb2: ModuleType) -> None:
    engine = fake_engine(tmp_path)
    done = export_triton(engine.sidecar_path, tmp_path / "repo", max_batch=64)
    model_dir = tmp_path / "repo" / "fer"
    assert (model_dir / "1" / "model.plan").read_bytes() == engine.model_path.read_bytes()
    config = triton_schema.parse(model_config_pb2, model_dir / "config.pbtxt")
    assert config.platform == "tensorrt_plan"
    assert config.max_batch_size == 16 and any("exceeds the engine's profile" in w for w in done.warnings)
    assert list(config.dynamic_batching.preferred_batch_size) == [8]
    assert list(config.input[0].dims) == [3, 48, 48] and list(config.output[0].dims) == [7]
    assert done.plugin_library is None and "--backend-config" not in done.start_command
    with pytest.raises(ExportError, match="ONNX package"):
        export_triton(engine.sidecar_path, tmp_path / "repo", cpu=True)


@pytest.mark.parametrize("version, warns", [("8.6.1", False), ("10.3.0", True)])
def test_plugin_engine_ships_the_library_and_the_server_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             model_config_pb2: ModuleType, version: str,
                                                             warns: bool) -> None:
    library = tmp_path / "libfer_edge_plugins.so"
    library.write_bytes(b"stand-in plugin library")
    monkeypatch.setenv("FER_EDGE_PLUGIN_LIBRARY", str(library))
    engine = fake_engine(tmp_path, version, plugin=True)
    done = export_triton(engine.sidecar_path, tmp_path / "repo")
    copied = tmp_path / "repo" / "fer" / library.name
    assert done.plugin_library == copied and copied.read_bytes() == library.read_bytes()
    assert "--backend-config=tensorrt,plugins=/models/fer/libfer_edge_plugins.so" in done.start_command
    assert any("loadLibrary" in w for w in done.warnings) == warns
    triton_schema.parse(model_config_pb2, tmp_path / "repo" / "fer" / "config.pbtxt")


def test_bad_input_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        export_triton("no_such_model", tmp_path / "repo")
    with pytest.raises(PackageError, match="PyTorch"):
        export_triton(SHIPPED_MODELS_DIR / "faer.json", tmp_path / "repo")
    package = make_package(tmp_path)
    with pytest.raises(ExportError, match="model name"):
        export_triton(package.sidecar_path, tmp_path / "repo", name="../escape")
    wrong = package.sidecar
    wrong.input = InputSpec(size=(64, 64))
    write_package(package.model_path, wrong)
    with pytest.raises(PackageError, match="another model"):
        export_triton(package.sidecar_path, tmp_path / "repo")
    assert not (tmp_path / "repo" / "fer").exists(), "a failed export leaves no model folder"


def test_reexport_replaces_the_model_folder(tmp_path: Path, model_config_pb2: ModuleType) -> None:
    package = make_package(tmp_path)
    export_triton(package.sidecar_path, tmp_path / "repo")
    (tmp_path / "repo" / "fer" / "stale.txt").write_text("from an older export")
    export_triton(package.sidecar_path, tmp_path / "repo", max_batch=2)
    assert triton_schema.parse(model_config_pb2, tmp_path / "repo" / "fer" / "config.pbtxt").max_batch_size == 2
    assert not (tmp_path / "repo" / "fer" / "stale.txt").exists()
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["fer"], "no staging folder is left behind"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], model_config_pb2: ModuleType) -> None:
    package = make_package(tmp_path)
    assert main(["export-triton", "--model", str(package.sidecar_path), "--out", str(tmp_path / "repo"),
                 "--gpus", "0,1", "--instances", "2"]) == 0
    (group,) = triton_schema.parse(model_config_pb2, tmp_path / "repo" / "fer" / "config.pbtxt").instance_group
    assert group.count == 2 and list(group.gpus) == [0, 1]
    out = capsys.readouterr().out
    assert "docker run --gpus all" in out and "tritonserver --model-repository=/models" in out
    assert "backend='triton'" in out
    assert main(["export-triton", "--model", "no_such_model", "--out", str(tmp_path / "repo")]) == 1
    assert "no_such_model" in capsys.readouterr().err



def test_the_schema_check_bites(tmp_path: Path, model_config_pb2: ModuleType) -> None:
    """A field Triton does not know fails the parse, so the checks above are not vacuous."""
    from google.protobuf.text_format import ParseError

    package = make_package(tmp_path)
    export_triton(package.sidecar_path, tmp_path / "repo")
    config = tmp_path / "repo" / "fer" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size", "max_batch"))
    with pytest.raises(ParseError):
        triton_schema.parse(model_config_pb2, config)
