"""fer_edge.bench and `fer-edge bench`: structured, self-consistent measurements (never timing targets)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from cpu_load import other_processes_on_every_core
from tiny_package import make_package

from fer_edge.bench import (
    LatencyStats,
    bench_engine,
    bench_recognizer,
    benchmark,
    load_frames,
    machine_info,
    open_recognizer,
    parse_batches,
    synthetic_frame,
    time_calls,
)
from fer_edge.bench.e2e import STAGES
from fer_edge.bench.stats import ForeignLoad, current_rss_mb, device_memory_used_mb, peak_rss_mb
from fer_edge.builder.export import EXPORT_REVISION
from fer_edge.cli import main
from fer_edge.engines import get_backend
from fer_edge.errors import BackendUnavailableError, ImageReadError, InvalidInputError
from fer_edge.package import ModelPackage


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return make_package(tmp_path_factory.mktemp("pkg"), max_batch=4)


def check_stats(stats: LatencyStats, iters: int) -> None:
    assert stats.iters == iters
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms <= stats.max_ms


def test_latency_stats_percentiles_of_known_samples() -> None:
    stats = LatencyStats.from_seconds([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01) and stats.mean_ms == pytest.approx(50.5)
    assert (stats.min_ms, stats.max_ms) == (pytest.approx(1.0), pytest.approx(100.0))
    with pytest.raises(InvalidInputError, match="at least one"):
        LatencyStats.from_seconds([])


def test_time_calls_runs_warmup_untimed_then_iters() -> None:
    calls: list[int] = []
    stats = time_calls(calls.append, warmup=3, iters=5)
    assert calls == list(range(8)) and stats.iters == 5
    with pytest.raises(InvalidInputError, match="--iters >= 1"):
        time_calls(calls.append, warmup=0, iters=0)
    with pytest.raises(InvalidInputError, match="--warmup >= 0"):
        time_calls(calls.append, warmup=-1, iters=2)


def test_parse_batches() -> None:
    assert parse_batches("1,4, 8,16") == (1, 4, 8, 16)
    for bad in ("", "0,4", "1,x", "-1"):
        with pytest.raises(InvalidInputError, match="--batch"):
            parse_batches(bad)


def test_bench_engine_results_are_consistent(package: ModelPackage) -> None:
    engine = get_backend("onnxruntime").load(package, "cpu")
    results = bench_engine(engine, (1, 3, 9), warmup=1, iters=4)  # 9 > max_batch 4: runs in chunks
    assert [r.batch for r in results] == [1, 3, 9]
    for r in results:
        check_stats(r.latency, 4)
        assert r.throughput == pytest.approx(r.batch / (r.latency.mean_ms / 1e3))
        assert r.to_dict()["throughput_fps"] == pytest.approx(r.throughput, rel=1e-3)
    with pytest.raises(InvalidInputError, match="batch sizes"):
        bench_engine(engine, (0,), 0, 1)


def test_benchmark_a_package_path(package: ModelPackage) -> None:
    result = benchmark(str(package.sidecar_path), batches=(1, 2), warmup=1, iters=3)
    assert (result.backend, result.device, result.precision, result.model_id) == ("onnxruntime", "cpu", "fp32", "tiny")
    assert result.input_size == (48, 48) and result.load_s > 0 and result.peak_rss_mb > 0
    assert result.device_mem_mb is None  # CPU: no device memory to report
    doc = json.loads(json.dumps(result.to_dict()))
    assert [b["batch"] for b in doc["batches"]] == [1, 2] and doc["engine"]["threads"] >= 1


def test_benchmark_zoo_id_errors_before_building() -> None:
    with pytest.raises(BackendUnavailableError, match="fer-edge build --model simam_resnet --target tensorrt"):
        benchmark("simam_resnet", backend="tensorrt", iters=1)
    with pytest.raises(InvalidInputError, match="fp32 or int8"):
        benchmark("simam_resnet", precision="fp16", iters=1)
    with pytest.raises(InvalidInputError, match="variant"):
        benchmark("simam_resnet", variant="huge", iters=1)


def test_benchmark_zoo_id_builds_a_cached_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_EDGE_HOME", str(tmp_path))
    result = benchmark("simam_resnet", precision="fp32", in_size=(32, 32), batches=(2,), warmup=0, iters=2)
    assert (result.model_id, result.variant, result.input_size, result.precision) == ("simam_resnet", "edge", (32, 32),
                                                                                       "fp32")
    cached = tmp_path / "bench" / f"simam_resnet_edge_32x32_fp32_r{EXPORT_REVISION}.json"
    assert cached.is_file() and "untrained" in json.loads(cached.read_text())["training"]["weights"]
    again = benchmark("simam_resnet", precision="fp32", in_size=(32, 32), batches=(1,), warmup=0, iters=1)
    assert again.engine["file"] == result.engine["file"]  # reused, not rebuilt


def test_synthetic_frame_and_load_frames(tmp_path: Path) -> None:
    frame = synthetic_frame()
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8 and frame[0, 0].tolist() == [114] * 3
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.roll(frame, i, axis=1))
    (folder / "notes.txt").write_text("not an image")
    assert len(load_frames(folder)) == 3 and len(load_frames(folder, limit=2)) == 2
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(4):
        writer.write(frame)
    writer.release()
    assert [f.shape for f in load_frames(video)] == [(480, 640, 3)] * 4
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="no images"):
        load_frames(empty)


def test_bench_recognizer_has_consistent_stages(package: ModelPackage) -> None:
    recognizer, load_s = open_recognizer(str(package.sidecar_path))
    blank = np.full((480, 640, 3), 114, np.uint8)
    result = bench_recognizer(recognizer, [synthetic_frame(), blank], warmup=1, iters=4, source="test", load_s=load_s)
    assert result.faces_per_frame == pytest.approx(0.5)  # the astronaut's face, then no face
    assert list(result.stages) == list(STAGES) and result.frame_size == (480, 640)
    check_stats(result.latency, 4)
    for stats in result.stages.values():
        assert stats.iters == 4 and 0 <= stats.min_ms <= stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert result.fps == pytest.approx(1e3 / result.latency.mean_ms)
    assert result.to_dict()["recognizer"]["backend"] == "onnxruntime"


def test_cli_engine_mode_json_and_table(package: ModelPackage, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(package.sidecar_path)
    assert main(["bench", "--model", model, "--batch", "1,2", "--warmup", "0", "--iters", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "engine" and [b["batch"] for b in doc["batches"]] == [1, 2]
    assert main(["bench", "--model", model, "--batch", "4", "--warmup", "0", "--iters", "2"]) == 0
    out = capsys.readouterr().out
    assert "tiny (edge, 48x48, fp32) on onnxruntime" in out and "faces/s" in out


def test_cli_e2e_mode(package: ModelPackage, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--model", str(package.sidecar_path), "--e2e", "synthetic", "--warmup", "1", "--iters", "2",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "e2e" and doc["faces_per_frame"] == 1 and set(doc["stages"]) == set(STAGES)


@pytest.mark.parametrize("argv, message", [
    (["--batch", "1,zero"], "--batch must be comma-separated positive integers"),
    (["--iters", "0"], "--iters >= 1"),
    (["--in-size", "4"], "--in-size must be at least 8"),
    (["--e2e", "/nonexistent/clip.mp4"], "does not exist"),
])
def test_cli_bad_arguments_fail_clearly(package: ModelPackage, capsys: pytest.CaptureFixture[str], argv: list[str],
                                        message: str) -> None:
    assert main(["bench", "--model", str(package.sidecar_path), *argv]) == 1
    assert message in capsys.readouterr().err


def test_cli_missing_model_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--model", str(tmp_path / "nope.json"), "--iters", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_memory_probes() -> None:
    assert peak_rss_mb() >= current_rss_mb() > 1  # MiB; this Python process alone holds more than 1
    assert device_memory_used_mb("cpu") is None and device_memory_used_mb(None) is None


def test_machine_info_names_cpu_and_versions() -> None:
    info = machine_info()
    assert info["cores"] >= 1 and info["cpu"] and info["onnxruntime"] and info["python"].count(".") == 2


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="ForeignLoad reads /proc/stat (Linux)")
def test_foreign_load_counts_other_processes_not_this_one() -> None:
    import threading
    import time

    with other_processes_on_every_core():
        time.sleep(0.3)
        with ForeignLoad() as busy:
            time.sleep(1.0)
    matrix = np.random.default_rng(0).standard_normal((400, 400))

    def work() -> None:  # numpy releases the GIL: this process alone fills every core
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            matrix @ matrix

    with ForeignLoad() as own:
        threads = [threading.Thread(target=work) for _ in range(os.cpu_count() or 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert busy.share is not None and own.share is not None
    assert busy.share > 0.6 and own.share < 0.5
