"""Graph surgery with onnx-graphsurgeon: the plugin form of an exported graph.

Each plugin region arrives as an ONNX local-function call (see :mod:`fer_edge.builder.export`);
it becomes one node named after the TensorRT plugin (``SimAM_TRT``, ``CCAttention_TRT``) in
domain ``fer_edge`` with ``plugin_version`` "1", ``plugin_namespace`` "" and the module's
``plugin_attrs()``. TensorRT's ONNX parser maps an unknown op_type to the plugin of that name and
reads only the fields the creator lists (FACTS.md), so attribute names and types must match the
creators in ``cpp/`` exactly: ``lambda`` is a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fer_edge.errors import ExportError

PLUGIN_DOMAIN = "fer_edge"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
# plugin op -> number of inputs its creator expects (X; or X, Q, K, V)
PLUGIN_INPUTS = {"SimAM_TRT": 1, "CCAttention_TRT": 4}


@dataclass(frozen=True)
class PluginSite:
    """One region to replace: the function-call node, its plugin op, attributes and input order."""

    node_name: str
    op: str
    attrs: dict[str, Any]
    inputs: list[str]  # tensor names in the plugin's input order
    outputs: list[str]


def _plugin_attrs(site: PluginSite) -> dict[str, Any]:
    attrs: dict[str, Any] = {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}
    for key, value in site.attrs.items():
        attrs[key] = float(value) if isinstance(value, (int, float)) else value  # creators read float32
    return attrs


def to_plugin_form(functional: Any, sites: list[PluginSite]) -> Any:
    """Replace every function call listed in ``sites`` by its plugin node; return a new ModelProto."""
    import onnx
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(functional)
    by_name = {node.name: node for node in graph.nodes}
    tensors = graph.tensors()
    for site in sites:
        node = by_name.get(site.node_name)
        if node is None:
            raise ExportError(f"plugin site {site.node_name!r} is not in the graph")
        expected = PLUGIN_INPUTS.get(site.op)
        if expected is None:
            raise ExportError(f"unknown plugin op {site.op!r}; the plugin library provides {sorted(PLUGIN_INPUTS)}")
        if len(site.inputs) != expected or not set(site.inputs) <= {t.name for t in node.inputs}:
            raise ExportError(f"{site.node_name}: {site.op} takes {expected} inputs, got {site.inputs}")
        outputs = list(node.outputs)
        node.outputs.clear()
        node.inputs.clear()
        graph.nodes.append(gs.Node(op=site.op, name=site.node_name.rsplit("/", 1)[0] + "/" + site.op,
                                   domain=PLUGIN_DOMAIN, attrs=_plugin_attrs(site),
                                   inputs=[tensors[name] for name in site.inputs], outputs=outputs))
    graph.functions = []
    graph.cleanup().toposort()
    model = gs.export_onnx(graph)
    model.opset_import.extend([onnx.helper.make_opsetid(PLUGIN_DOMAIN, 1)])
    prune_opsets(model)
    model.ir_version = functional.ir_version
    onnx.checker.check_model(model)
    return model


def prune_opsets(model: Any) -> None:
    """Drop opset imports no node uses (the exporter's per-module function domains), in place."""
    import onnx

    kept = {(o.domain, o.version) for o in model.opset_import}
    used = {n.domain for n in model.graph.node} | {""}
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(kept) if d in used)


def region_nodes(model: Any, site: PluginSite) -> list[str]:
    """Names of the nodes that compute ``site`` in a graph where it is NOT a single node (the
    portable form): everything between its output and its inputs. Quantization uses this to keep
    the region un-quantized."""
    producer = {out: node for node in model.graph.node for out in node.output}
    stop = set(site.inputs) | {t.name for t in model.graph.initializer} | {i.name for i in model.graph.input}
    found: dict[str, None] = {}
    pending = list(site.outputs)
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in found:
            continue
        found[node.name] = None
        pending.extend(name for name in node.input if name and name not in stop)
    if not found:
        raise ExportError(f"region of {site.node_name} not found in the graph (outputs {site.outputs})")
    return list(found)


def plugin_nodes(model: Any) -> list[Any]:
    """The fer_edge plugin nodes of a graph (what a TensorRT build needs the plugin library for)."""
    return [node for node in model.graph.node if node.domain == PLUGIN_DOMAIN]
