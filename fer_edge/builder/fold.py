"""Exact graph rewrites that make an exported graph cheaper to run, on every backend.

``fold_space_to_depth``: simam_resnet's SC stem (seeds/002) samples four interleaved sub-grids,
concatenates them on the channels and applies a 1x1 conv. That is one 2x2 convolution of stride 2
with the 1x1 weights rearranged, the same multiply-adds without the four Slices, the Concat and
(in ONNX Runtime) the SpaceToDepth + Gather it makes of them. In an INT8 graph the rewrite also
removes the float island between two int8 convolutions: the DequantizeLinear of the stem's
output (the largest activation in the model), the shuffles and the QuantizeLinear after them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SUBGRIDS = {(0, 0), (1, 0), (0, 1), (1, 1)}


def _constants(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _subgrid(node: Any, values: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """(row, column) offset of a Slice that takes every second row and column from there on, else None."""
    if node.op_type != "Slice" or len(node.input) != 5 or not all(name in values for name in node.input[1:]):
        return None
    starts, ends, axes, steps = (values[name].tolist() for name in node.input[1:])
    by_axis = {axis % 4: (start, end, step) for axis, start, end, step in zip(axes, starts, ends, steps)}
    if sorted(by_axis) != [2, 3] or any(step != 2 or end < 2**30 for _, end, step in by_axis.values()):
        return None
    offset = (by_axis[2][0], by_axis[3][0])
    return offset if offset in _SUBGRIDS else None


def _weight_initializer(model: Any, name: str) -> tuple[Any, Any | None] | None:
    """The initializer behind a Conv weight: itself, or the float16 one a Cast turns into it."""
    inits = {init.name: init for init in model.graph.initializer}
    if name in inits:
        return inits[name], None
    cast = next((n for n in model.graph.node if n.op_type == "Cast" and n.output[0] == name), None)
    if cast is not None and cast.input[0] in inits:
        return inits[cast.input[0]], cast
    return None


def fold_space_to_depth(model: Any) -> tuple[Any, int]:
    """Rewrite every 4-sub-grid Concat feeding a 1x1 Conv as a 2x2 stride-2 Conv; returns (model, count).

    The 1x1 weight ``W[o, g*C + c]`` of sub-grid ``g`` at offset ``(a, b)`` becomes ``W'[o, c, a, b]``.
    Patterns that differ in any way (other steps, a consumer besides the Conv, a strided or grouped
    conv, a weight that is not a constant) are left as they are.
    """
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    values = _constants(out)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for output in graph.output:  # a graph output is a consumer too: its tensor must survive
        consumers.setdefault(output.name, []).append(output)
    producer = {name: node for node in graph.node for name in node.output}
    dropped: set[int] = set()
    count = 0
    for concat in list(graph.node):
        if concat.op_type != "Concat" or _attr(concat, "axis", None) not in (1, -3) or len(concat.input) != 4:
            continue
        slices = [s for s in (producer.get(name) for name in concat.input) if s is not None]
        offsets = [o for o in (_subgrid(s, values) for s in slices) if o is not None]
        if len(offsets) != 4 or set(offsets) != _SUBGRIDS or len({s.input[0] for s in slices}) != 1:
            continue
        if any(len(consumers.get(s.output[0], [])) != 1 for s in slices):
            continue
        users = consumers.get(concat.output[0], [])
        conv = users[0] if len(users) == 1 else None
        if conv is None or getattr(conv, "op_type", None) != "Conv" or _attr(conv, "group", 1) != 1 or \
                list(_attr(conv, "strides", [1, 1])) != [1, 1] or any(_attr(conv, "pads", [0, 0, 0, 0])) or \
                list(_attr(conv, "dilations", [1, 1])) != [1, 1]:
            continue
        found = _weight_initializer(out, conv.input[1])
        if found is None or tuple(found[0].dims[2:]) != (1, 1) or found[0].dims[1] % 4:
            continue
        init = found[0]  # a float16-storage Cast stays: only the initializer behind it changes
        weight = numpy_helper.to_array(init)
        chs = weight.shape[1] // 4
        folded = np.empty((weight.shape[0], chs, 2, 2), dtype=weight.dtype)
        for g, (row, col) in enumerate(offsets):
            folded[:, :, row, col] = weight[:, g * chs:(g + 1) * chs, 0, 0]
        init.CopyFrom(numpy_helper.from_array(folded, init.name))
        del conv.attribute[:]
        conv.attribute.extend([helper.make_attribute("kernel_shape", [2, 2]), helper.make_attribute("strides", [2, 2]),
                               helper.make_attribute("pads", [0, 0, 0, 0]), helper.make_attribute("dilations", [1, 1]),
                               helper.make_attribute("group", 1)])
        conv.input[0] = slices[0].input[0]
        dropped.update(id(node) for node in (*slices, concat))
        count += 1
    if count:
        kept = [node for node in graph.node if id(node) not in dropped]
        del graph.node[:]
        graph.node.extend(kept)
        used = {name for node in graph.node for name in node.input}
        unused = [init for init in graph.initializer if init.name not in used]
        for init in unused:
            graph.initializer.remove(init)
        del graph.value_info[:]  # shapes of the removed tensors; ONNX Runtime re-infers the rest
    return out, count


def fold_checked(model: Any, faces: np.ndarray, rtol: float = 1e-4) -> tuple[Any, int]:
    """:func:`fold_space_to_depth`, then the folded graph compared with ``model`` on ``faces``.

    For graphs that arrive as ONNX (no PyTorch model to check against): the rewrite is exact, so
    the logits must agree within ``rtol`` (max-abs, relative to their magnitude when above 1),
    else :class:`~fer_edge.errors.ExportError`.
    """
    from fer_edge.builder.export import INPUT_NAME, OUTPUT_NAME, onnx_session, relative_max_diff
    from fer_edge.errors import ExportError

    folded, count = fold_space_to_depth(model)
    if count:
        expected = onnx_session(model).run([OUTPUT_NAME], {INPUT_NAME: faces})[0]
        got = onnx_session(folded).run([OUTPUT_NAME], {INPUT_NAME: faces})[0]
        err = relative_max_diff(got, expected)
        if not np.isfinite(err) or err > rtol:
            raise ExportError(f"folding the space-to-depth stem changed the logits by {err:.3g} (> {rtol:g})")
    return folded, count
