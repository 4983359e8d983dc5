"""``fer-edge export-deepstream``: documented nvinfer keys only, and nvinfer's normalisation of the
exported config reproducing our :func:`preprocess` on a real photo.

nvinfer is emulated, not run (no DeepStream here): it scales the object crop to the network size
(emulated by the same resize our preprocess uses, so only the normalisation is compared),
converts to gray for ``model-color-format=2`` (emulated with OpenCV's BGR->gray, as ours), and
computes ``y = net-scale-factor * (x - offsets[c])`` per channel (Gst-nvinfer docs).
"""

from __future__ import annotations

import configparser
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fer_edge.builder.deepstream_export import NVINFER_PROPERTY_KEYS, OUTPUT_NAME, export_deepstream, normalisation
from fer_edge.cli import main
from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.errors import ExportError, PackageError
from fer_edge.package import InputSpec, load_package, write_package
from fer_edge.recognizer.recognizer import softmax
from fer_edge.vision.preprocess import preprocess
from tests.test_export_triton import fake_engine
from tests.tiny_package import make_package

IMAGENET = InputSpec(size=(48, 48), color="rgb", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def read_config(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # nvinfer keys are case-sensitive
    parser.read(path)
    assert parser.sections() == ["property"], "a classifier config has only the [property] group"
    return dict(parser["property"])


@pytest.fixture(scope="module")
def face_bgr() -> np.ndarray:
    """The astronaut's face (public-domain NASA portrait from scikit-image), scaled to 48x48 BGR."""
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    face = data.astronaut()[30:230, 140:320, ::-1]
    return cv2.resize(np.ascontiguousarray(face), (48, 48), interpolation=cv2.INTER_AREA)


def nvinfer_input(props: dict[str, str], crop_bgr: np.ndarray) -> np.ndarray:
    """What nvinfer feeds the network for this network-size crop, from the config's own numbers."""
    scale = float(props["net-scale-factor"])
    offsets = np.array([float(v) for v in props["offsets"].split(";")], dtype=np.float32)
    if props["model-color-format"] == "2":
        planes = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)[None]
    else:
        assert props["model-color-format"] == "0"
        planes = crop_bgr[:, :, ::-1].transpose(2, 0, 1)  # RGB planes
    return (scale * (planes.astype(np.float32) - offsets[:, None, None]))[None].astype(np.float32)


def run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0])


def test_shipped_default_config_keys_and_files(tmp_path: Path) -> None:
    package = load_package(SHIPPED_MODELS_DIR / "fer_default.json")
    config = export_deepstream("default", tmp_path / "ds")
    props = read_config(config)
    assert set(props) <= NVINFER_PROPERTY_KEYS, f"undocumented nvinfer keys: {set(props) - NVINFER_PROPERTY_KEYS}"
    assert props["network-type"] == "1" and props["process-mode"] == "2"
    assert props["output-blob-names"] == OUTPUT_NAME
    assert props["batch-size"] == str(package.sidecar.batch.max)
    assert props["model-engine-file"] == f"fer.onnx_b{package.sidecar.batch.max}_gpu0_fp32.engine"
    labels = (tmp_path / "ds" / props["labelfile-path"]).read_text().splitlines()
    assert labels == [";".join(package.sidecar.classes)], "a classifier's labels are one ';'-separated line"
    graph = onnx.load(str(tmp_path / "ds" / props["onnx-file"])).graph
    (graph_input,) = graph.input
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    assert props["infer-dims"] == ";".join(map(str, dims)) == "1;48;48"  # gray: nvinfer's 1-channel GRAY input
    assert [o.name for o in graph.output] == [OUTPUT_NAME]
    assert not [n for n in graph.node if n.name.startswith("fer_channel")], "equal std needs no graph fix"


def test_gray_round_trip_reproduces_preprocess(tmp_path: Path, face_bgr: np.ndarray) -> None:
    package = load_package(SHIPPED_MODELS_DIR / "fer_default.json")
    props = read_config(export_deepstream("default", tmp_path / "ds"))
    ours = preprocess(face_bgr, package.sidecar.input)
    theirs = nvinfer_input(props, face_bgr)
    np.testing.assert_allclose(np.repeat(theirs, 3, axis=1), ours, atol=1e-6)
    expected = softmax(run_onnx(package.model_path, ours))
    got = run_onnx(tmp_path / "ds" / props["onnx-file"], theirs)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.argmax() == expected.argmax()


def test_per_channel_std_is_folded_into_the_graph(tmp_path: Path, face_bgr: np.ndarray) -> None:
    """nvinfer has one net-scale-factor; ImageNet std differs per channel, so the rest goes into the ONNX."""
    package = make_package(tmp_path, spec=IMAGENET)
    assert not normalisation(IMAGENET).exact
    config = export_deepstream(package.sidecar_path, tmp_path / "ds")
    props = read_config(config)
    assert props["model-color-format"] == "0" and props["infer-dims"] == "3;48;48"
    assert len(props["offsets"].split(";")) == 3
    assert "folded into the ONNX" in config.read_text()
    expected = softmax(run_onnx(package.model_path, preprocess(face_bgr, IMAGENET)))
    got = run_onnx(tmp_path / "ds" / props["onnx-file"], nvinfer_input(props, face_bgr))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_gray_with_per_channel_mean_and_std(tmp_path: Path, face_bgr: np.ndarray) -> None:
    spec = InputSpec(size=(48, 48), color="gray", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    package = make_package(tmp_path, spec=spec)
    props = read_config(export_deepstream(package.sidecar_path, tmp_path / "ds"))
    assert props["offsets"] == repr(255 * 0.4)  # one offset for nvinfer's one gray plane
    expected = softmax(run_onnx(package.model_path, preprocess(face_bgr, spec)))
    got = run_onnx(tmp_path / "ds" / props["onnx-file"], nvinfer_input(props, face_bgr))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_plugin_form_onnx_gets_the_custom_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "libfer_edge_plugins.so"
    library.write_bytes(b"stand-in plugin library")
    monkeypatch.setenv("FER_EDGE_PLUGIN_LIBRARY", str(library))
    package = make_package(tmp_path)
    sidecar = package.sidecar
    sidecar.graph_form = "plugin"
    write_package(package.model_path, sidecar)
    with pytest.warns(UserWarning, match="loadLibrary"):
        config = export_deepstream(package.sidecar_path, tmp_path / "ds", mode="fp16", batch_size=4)
    props = read_config(config)
    assert set(props) <= NVINFER_PROPERTY_KEYS
    assert props["custom-lib-path"] == library.name
    assert (tmp_path / "ds" / library.name).read_bytes() == library.read_bytes()
    assert props["network-mode"] == "2" and props["batch-size"] == "4"


def test_bad_input_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="engine"):
        export_deepstream(fake_engine(tmp_path).sidecar_path, tmp_path / "ds")
    with pytest.raises(PackageError, match="PyTorch"):
        export_deepstream(SHIPPED_MODELS_DIR / "faer.json", tmp_path / "ds")
    with pytest.raises(ExportError, match="network mode"):
        export_deepstream("default", tmp_path / "ds", mode="int4")
    with pytest.raises(ExportError, match="model name"):
        export_deepstream("default", tmp_path / "ds", name="a/b")
    with pytest.warns(UserWarning, match="symmetric INT8"):
        export_deepstream(SHIPPED_MODELS_DIR / "fer_default_int8.json", tmp_path / "ds")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-deepstream", "--model", "default", "--out", str(tmp_path / "ds"), "--gie-id", "3",
                 "--detector-gie-id", "7", "--threshold", "0.4"]) == 0
    assert "[secondary-gie0]" in capsys.readouterr().out
    props = read_config(tmp_path / "ds" / "config_infer_secondary_fer.txt")
    assert (props["gie-unique-id"], props["operate-on-gie-id"], props["classifier-threshold"]) == ("3", "7", "0.4")
    assert main(["export-deepstream", "--model", "no_such_model", "--out", str(tmp_path / "ds")]) == 1


def test_the_package_temperature_is_applied_before_the_softmax(tmp_path: Path, face_bgr: np.ndarray) -> None:
    """nvinfer reads probabilities: they must be the calibrated ones every other backend gives."""
    import shutil

    shipped = load_package(SHIPPED_MODELS_DIR / "fer_default.json")
    shutil.copy(shipped.model_path, tmp_path / shipped.model_path.name)
    shipped.sidecar.temperature = 2.5
    package = write_package(tmp_path / shipped.model_path.name, shipped.sidecar)
    props = read_config(export_deepstream(str(package.sidecar_path), tmp_path / "ds"))
    logits = run_onnx(package.model_path, preprocess(face_bgr, package.sidecar.input))
    got = run_onnx(tmp_path / "ds" / props["onnx-file"], nvinfer_input(props, face_bgr))
    np.testing.assert_allclose(got, softmax(logits, 2.5), atol=1e-5)
    assert not np.allclose(got, softmax(logits), atol=1e-3)
