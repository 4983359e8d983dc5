"""``fer-edge build`` on the ONNX Runtime target: real packages, option handling, interruption."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cpu_load import other_processes_on_every_core

from fer_edge.builder.pipeline import build, resolve_options
from fer_edge.builder.quantize import predict
from fer_edge.cli import main
from fer_edge.package import load_package

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.filterwarnings("ignore:building 'simam_resnet' from the zoo")
def test_fp32_and_int8_packages(ferplus_dir: Path, tmp_path: Path) -> None:
    import onnx

    fp32 = build("simam_resnet", "fp32", "onnxruntime", str(tmp_path / "m.onnx"), batch="1:2:4", log=lambda _: None)
    side = load_package(fp32.sidecar_path).sidecar  # checksum verified
    assert (side.format, side.precision, side.model_id, side.opset) == ("onnx", "fp32", "simam_resnet", 17)
    assert (side.batch.min, side.batch.opt, side.batch.max) == (1, 2, 4) and len(side.classes) == 7
    int8 = build("simam_resnet", "int8", "onnxruntime", str(tmp_path / "q.onnx"), calib_dir=str(ferplus_dir / "FER2013Valid"),
                 calib_size=21, method="minmax", log=lambda _: None)
    side8 = load_package(int8.sidecar_path).sidecar
    assert side8.precision == "int8" and side8.calibration["num_images"] == 21
    assert len(side8.calibration["manifest_sha256"]) == 64
    model = onnx.load(str(int8.model_path))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    faces = np.random.default_rng(0).standard_normal((4, 3, *side8.input.size)).astype(np.float32)
    assert predict(model, faces).shape == (4, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx", "q.json", "q.onnx"]
    share = side8.calibration["op_selection"]["foreign_cpu_share"]
    assert share is None or 0.0 <= share <= 1.0


def test_int8_build_on_a_busy_machine_warns_that_its_op_selection_may_be_wrong(ferplus_dir: Path,
                                                                                tmp_path: Path) -> None:
    """One CPU-bound process per core runs beside the build: the op selection's timings are then
    worth little, and the build says so and records the share the other processes took."""
    with other_processes_on_every_core(), pytest.warns(UserWarning, match="op selection was timed"):
        int8 = build("local_joint", "int8", "onnxruntime", str(tmp_path / "q.onnx"), batch="1:2:2",
                     calib_dir=str(ferplus_dir / "FER2013Valid"), calib_size=16, method="minmax", log=lambda _: None)
    assert load_package(int8.sidecar_path).sidecar.calibration["op_selection"]["foreign_cpu_share"] > 0.25


def test_options_the_target_ignores_are_dropped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="--workspace has no effect"):
        precision, kept = resolve_options("onnxruntime", "fp32", {"workspace": 64, "batch": "1:2:4", "dla": None})
    assert precision == "fp32" and kept == {"batch": "1:2:4"}
    with pytest.warns(UserWarning, match="--fp16 is not available for --target onnxruntime"):
        assert resolve_options("onnxruntime", "fp16", {})[0] == "fp32"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_target_without_tensorrt_fails_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--model", "simam_resnet", "--target", "tensorrt", "-o", str(tmp_path / "m.engine")]) == 1
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "--target onnxruntime" in err and "pip install" in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_names_the_nearest_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--model", "simam_resnt", "--target", "onnxruntime"]) == 1
    assert "did you mean simam_resnet" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_leaves_no_package_file(ferplus_dir: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "out"
    # SIGINT is ignored in processes started in the background by a shell (nohup ... &), and
    # children inherit that: restore Python's handler so the test sees what a terminal user does
    child = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from fer_edge.cli import main; sys.exit(main())")
    cmd = [sys.executable, "-c", child, "build", "--model", "simam_resnet", "--int8", "--target",
           "onnxruntime", "--calib", str(ferplus_dir / "FER2013Valid"), "--calib-size", "400", "-o", str(out / "m.onnx")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV)
    assert proc.stderr is not None
    for line in proc.stderr:  # interrupt in the middle of quantization, the longest step
        if line.startswith("[4]"):
            proc.send_signal(sig)
            break
    proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert not out.exists() or list(out.iterdir()) == []


def test_fp16_weights_only_for_onnx_runtime_packages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--model", "simam_resnet", "--target", "tensorrt", "--onnx-only", "--fp16-weights"]) == 1
    assert "--fp16-weights" in capsys.readouterr().err
