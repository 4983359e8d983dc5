"""Version-bridging decisions, one case per supported TensorRT version, with no TensorRT installed."""

from __future__ import annotations

import types

import pytest

from fer_edge.errors import BackendUnavailableError
from fer_edge.trt_compat import TrtVersion, api_for, is_supported, max_onnx_opset

# version -> (explicit_batch_flag, strongly_typed_only, calibrator, plugin_interface, get-creator call)
EXPECTED = {
    "8.5.2.2": (True, False, True, "IPluginV2", "get_plugin_creator"),
    "8.6.2.3": (True, False, True, "IPluginV2", "get_plugin_creator"),
    "10.3.0.30": (False, False, True, "IPluginV3", "get_creator"),
    "10.13.0.35": (False, False, True, "IPluginV3", "get_creator"),
    "11.1.0": (False, True, False, "IPluginV3", "get_creator"),
}


@pytest.mark.parametrize("text", sorted(EXPECTED))
def test_api_decisions_per_version(text: str) -> None:
    explicit, strong, calib, plugin, get_creator = EXPECTED[text]
    api = api_for(text)
    assert api.explicit_batch_flag is explicit
    assert api.strongly_typed_only is strong
    assert api.precision_flags is not strong  # FP16/INT8 builder flags were removed with 11
    assert api.calibrator is calib
    assert api.plugin_interface == plugin
    assert api.registry_get_creator == get_creator
    assert api.registry_load_library is (not text.startswith("8."))
    assert api.progress_monitor is (not text.startswith("8."))


def test_network_flags_use_the_enum_values_of_the_module() -> None:
    fake_enum = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    trt = types.SimpleNamespace(NetworkDefinitionCreationFlag=fake_enum)
    assert api_for("8.6.1").network_flags(trt) == 1
    assert api_for("10.3.0").network_flags(trt) == 0
    assert api_for("10.3.0").network_flags(trt, strongly_typed=True) == 2
    # 11 has no EXPLICIT_BATCH member at all: it must not be touched, and strong typing is implicit
    assert api_for("11.1.0").network_flags(types.SimpleNamespace(NetworkDefinitionCreationFlag=None), True) == 0


def test_version_parsing_and_order() -> None:
    assert TrtVersion.parse("10.13.0.35") == TrtVersion(10, 13, 0)
    assert TrtVersion.parse("8.5") == TrtVersion(8, 5, 0)
    assert TrtVersion.parse("8.6.2") < TrtVersion.parse("10.3.0") < TrtVersion.parse("10.13.0")
    assert str(TrtVersion.parse("11.1")) == "11.1.0"
    with pytest.raises(BackendUnavailableError, match="cannot parse"):
        TrtVersion.parse("ten")


@pytest.mark.parametrize("text", ["7.2.3", "8.4.1", "9.2.0", "12.0.0"])
def test_unsupported_versions_are_refused_with_the_supported_list(text: str) -> None:
    assert not is_supported(TrtVersion.parse(text))
    with pytest.raises(BackendUnavailableError, match="8.5 or 8.6"):
        api_for(text)


def test_jetpack_parsers_cap_the_opset() -> None:
    assert max_onnx_opset("8.5.2") == 17
    assert max_onnx_opset("10.3.0") >= 17
