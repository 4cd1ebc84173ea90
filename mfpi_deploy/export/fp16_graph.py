"""Rewrite an fp32 ONNX graph to float16, keeping chosen nodes (and the graph's I/O) in float32.

Own pass rather than onnxconverter-common: its converter leaves the uint8->float Cast of our
graphs inconsistent with the rewritten types (the model then fails onnx.checker), and we need
exact control over which nodes stay in float32. Rules: every float tensor takes the precision
of the node that produces it; a consumer that needs the other precision gets a Cast (one per
tensor and precision); initializers are converted by copy; Resize's roi/scales stay float32
(their type is independent of the data's); float graph inputs and outputs stay float32.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP32, FP16 = TensorProto.FLOAT, TensorProto.FLOAT16
# Inputs whose element type is float32 whatever the data type: (op_type, input index).
ALWAYS_FP32 = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor in the graph (via ONNX shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.input, *g.output]}
    types.update({init.name: init.data_type for init in g.initializer})
    return types


def float_node_outputs(model: onnx.ModelProto) -> list[str]:
    """Names of the float32 tensors computed by nodes (what the range measurement exposes)."""
    types = tensor_types(model)
    return [o for n in model.graph.node for o in n.output if o and types.get(o) == FP32]


def expose(model: onnx.ModelProto, names: list[str], types: dict[str, int] | None = None) -> onnx.ModelProto:
    """A copy of `model` with `names` added as graph outputs (float32 unless `types` says otherwise)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(helper.make_tensor_value_info(name, (types or {}).get(name, FP32), None))
    return m


def _convert_tensor_attr(t: onnx.TensorProto) -> onnx.TensorProto:
    with np.errstate(over="ignore"):  # out-of-range values become inf; measurement keeps such nodes fp32
        arr = numpy_helper.to_array(t).astype(np.float16)
    return numpy_helper.from_array(arr, t.name)


def convert_to_fp16(model: onnx.ModelProto, keep_fp32: set[str] | frozenset[str] = frozenset()) -> onnx.ModelProto:
    """The float16 graph of `model`; nodes named in `keep_fp32` compute in float32."""
    types = tensor_types(model)
    src = model.graph
    inits = {i.name: i for i in src.initializer}
    graph_inputs = {i.name for i in src.input}
    natural: dict[str, int] = {}  # precision each float tensor is produced in
    for name in graph_inputs:
        if types.get(name) == FP32:
            natural[name] = FP32
    new_nodes: list[onnx.NodeProto] = []
    new_inits: dict[str, onnx.TensorProto] = {}
    casts: dict[tuple[str, int], str] = {}
    used_names = {o for n in src.node for o in n.output} | set(inits) | graph_inputs

    def unique(base: str) -> str:
        name, k = base, 0
        while name in used_names:
            k += 1
            name = f"{base}_{k}"
        used_names.add(name)
        return name

    def as_type(name: str, want: int) -> str:
        """`name` in precision `want`: a converted initializer copy or a Cast node output."""
        if name in inits:
            key = (name, want)
            if key not in casts:
                if want == FP32:
                    new_inits[name] = inits[name]
                    casts[key] = name
                else:
                    new_name = unique(f"{name}__fp16")
                    t = _convert_tensor_attr(inits[name])
                    t.name = new_name
                    new_inits[new_name] = t
                    casts[key] = new_name
            return casts[key]
        have = natural.get(name, want)
        if have == want:
            return name
        key = (name, want)
        if key not in casts:
            out = unique(f"{name}__{'fp16' if want == FP16 else 'fp32'}")
            new_nodes.append(helper.make_node("Cast", [name], [out], name=unique(f"cast_{out}"), to=want))
            casts[key] = out
        return casts[key]

    for node in src.node:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        prec = FP32 if node.name in keep_fp32 else FP16
        for i, name in enumerate(node.input):
            if not name:
                continue
            is_float = types.get(name) == FP32 or (name in natural)
            if not is_float:
                if name in inits:
                    new_inits.setdefault(name, inits[name])
                continue
            want = FP32 if (node.op_type, i) in ALWAYS_FP32 else prec
            n.input[i] = as_type(name, want)
        if prec == FP16:
            if node.op_type == "Cast":
                for a in n.attribute:
                    if a.name == "to" and a.i == FP32:
                        a.i = FP16
            elif node.op_type in ("Constant", "ConstantOfShape"):
                for a in n.attribute:
                    if a.name == "value" and a.t.data_type == FP32:
                        a.t.CopyFrom(_convert_tensor_attr(a.t))
        for name in node.output:
            if name and types.get(name) == FP32:
                natural[name] = prec
        new_nodes.append(n)

    # Float graph outputs stay float32: cast back under the original name.
    outputs = []
    for out in src.output:
        if types.get(out.name) == FP32 and natural.get(out.name) == FP16:
            inner = unique(f"{out.name}__fp16")
            for n in new_nodes:
                for i, name in enumerate(n.output):
                    if name == out.name:
                        n.output[i] = inner
                for i, name in enumerate(n.input):
                    if name == out.name:
                        n.input[i] = inner
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], name=unique(f"cast_{out.name}"), to=FP32))
        outputs.append(out)

    graph = helper.make_graph(new_nodes, src.name, list(src.input), outputs, initializer=list(new_inits.values()))
    result = helper.make_model(
        graph,
        opset_imports=list(model.opset_import),
        producer_name=model.producer_name,
        producer_version=model.producer_version,
    )
    result.ir_version = model.ir_version
    for p in model.metadata_props:
        result.metadata_props.append(p)
    return result
