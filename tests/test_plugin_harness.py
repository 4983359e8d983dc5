"""What ``cpp/ci_checks.sh`` proved about the plugin classes without a GPU, checked against Python's side.

``ci_checks.sh`` builds and runs ``cpp/tests/pluginHarness.cpp`` (creators and plugins driven through
the TensorRT interfaces of the 8.5.3, 8.6.1, 10.3 and 11.1 headers, kernels replaced by a CPU stub)
and ``cpp/tests/reductionEmulation.cpp`` (each kernel's block reduction replayed thread by thread
against float64), and passes their JSON reports here. These tests check that every header set was
covered, and that the fields each creator lists are exactly the attributes the export writes on its
plugin nodes (TensorRT's ONNX parser passes only listed fields; a misnamed one is silently dropped).
Nothing here runs TensorRT or a CUDA kernel. Outside ``ci_checks.sh`` the reports are absent: skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPORTS = [Path(p) for p in os.environ.get("FER_EDGE_PLUGIN_HARNESS_REPORTS", "").split(os.pathsep) if p]
REDUCTION = os.environ.get("FER_EDGE_REDUCTION_REPORT")
needs_reports = pytest.mark.skipif(not REPORTS, reason="harness reports come from `bash cpp/ci_checks.sh`, which "
                                   "builds and runs the harness and then these tests")


def _reports() -> list[dict]:
    return [json.loads(p.read_text()) for p in REPORTS]


@needs_reports
def test_harness_ran_against_all_four_header_sets_without_failures() -> None:
    reports = {r["tensorrt"]: r for r in _reports()}
    assert sorted(reports) == ["10.3", "11.1", "8.5", "8.6"]
    for version, report in reports.items():
        expected = "IPluginV2DynamicExt" if version.startswith("8.") else "IPluginV3"
        assert report["interface"] == expected, version
        assert report["failures"] == 0 and report["checks"] >= 60, (version, report["checks"])
        assert [c["name"] for c in report["creators"]] == ["SimAM_TRT", "CCAttention_TRT"]


@needs_reports
def test_creator_fields_are_the_attributes_the_export_writes() -> None:
    """Every plugin node of every plugin-using zoo model, against every header set's creators."""
    import onnx
    import torch

    from fer_edge.builder.calibration import parity_faces
    from fer_edge.builder.export import export_model
    from fer_edge.builder.recipes import load_recipe
    from fer_edge.builder.surgery import plugin_nodes
    from fer_edge.models import create_model, list_models
    from fer_edge.package import BatchRange, InputSpec

    spec = InputSpec(size=(32, 32))
    faces, origin = parity_faces(spec, count=2)
    onnx_types = {onnx.AttributeProto.FLOAT: "FLOAT32", onnx.AttributeProto.INT: "INT32"}
    seen = set()
    for model_id in (m for m in list_models() if load_recipe(m).plugins):
        torch.manual_seed(0)
        model = create_model(model_id, variant="edge", in_size=spec.size).eval()
        result = export_model(model, spec, BatchRange(1, 2, 4), 17, faces, origin)
        for node in plugin_nodes(result.plugin):
            attrs = {a.name: a for a in node.attribute}
            version = attrs.pop("plugin_version").s.decode()
            namespace = attrs.pop("plugin_namespace").s.decode()
            for report in _reports():
                (creator,) = [c for c in report["creators"] if c["name"] == node.op_type]
                assert (creator["version"], creator["namespace"]) == (version, namespace), report["tensorrt"]
                fields = {f["name"]: (f["type"], f["length"]) for f in creator["fields"]}
                written = {name: (onnx_types.get(a.type, str(a.type)), 1) for name, a in attrs.items()}
                assert written == fields, (model_id, node.op_type, report["tensorrt"])
            seen.add(node.op_type)
    assert seen == {"SimAM_TRT", "CCAttention_TRT"}, f"the zoo exercised only {sorted(seen)}"


@pytest.mark.skipif(not REDUCTION, reason="the reduction report comes from `bash cpp/ci_checks.sh`")
def test_kernel_reduction_emulation_matches_float64_for_every_plane_size() -> None:
    report = json.loads(Path(str(REDUCTION)).read_text())
    assert report["sizes"] == [1, 3136] and report["pass"] is True
    assert {r["inputs"] for r in report["results"]} == {"unit", "offset_100", "wide_30"}
    for row in report["results"]:
        assert row["simam_max_rel_err"] <= report["bound"] and row["cc_attention_max_rel_err"] <= report["bound"]
