"""Hand-made ONNX graphs a precision gate must refuse (uint8 tiles in, one uint8 plane out, like an engine)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mfpi_deploy.engine.spec import EngineSpec

# what the graph below computes: 1 grey channel in, 1 plane out at the input's resolution
SPEC = EngineSpec(architecture="mfpinet", channels=1, planes=1, scale=1, stride=8, planes_um=(0.0,))
SHIFT = 0.2  # what the two convolutions add, in units of the output's full range (0.2 * 255 = 51 levels)


def offset_convs() -> onnx.ModelProto:
    """uint8 tiles -> u = x/255 -> 1x1 conv adding 1000 + SHIFT -> 1x1 conv subtracting 1000 -> clip to
    [0, 1] -> round(255 *) -> uint8: in float32 the output is the input brightened by SHIFT.

    Nothing overflows; only precision is lost: float16 cannot hold 1000.2 (it steps by 0.5 there, the
    constant becomes 1000.0, so the SHIFT is gone: 51 levels off wherever the output is not clipped),
    and bfloat16 steps by 4 (u itself is lost in the first convolution's output). Keeping the first
    convolution in float32 keeps its constant exact.
    """
    inits = [
        numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "one"),
        numpy_helper.from_array(np.array([1000.0 + SHIFT], np.float32), "plus"),
        numpy_helper.from_array(np.array([-1000.0], np.float32), "minus"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        numpy_helper.from_array(np.array(255.0, np.float32), "k255"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
    ]
    nodes = [
        helper.make_node("Cast", ["tiles"], ["x"], name="cast_in", to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Div", ["nchw", "k255"], ["u"], name="unit"),
        helper.make_node("Conv", ["u", "one", "plus"], ["up"], name="add_offset"),
        helper.make_node("Conv", ["up", "one", "minus"], ["v"], name="sub_offset"),
        helper.make_node("Clip", ["v", "lo", "hi"], ["c"], name="clip"),
        helper.make_node("Mul", ["c", "k255"], ["s"], name="scale"),
        helper.make_node("Round", ["s"], ["r"], name="round"),
        helper.make_node("Cast", ["r"], ["u8"], name="cast_out", to=TensorProto.UINT8),
        helper.make_node("Transpose", ["u8"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Unsqueeze", ["nhwc", "ax1"], ["planes"], name="add_plane_axis"),
    ]
    return one_plane_model(nodes, "offset_convs", inits)


def overflow() -> onnx.ModelProto:
    """uint8 tiles -> x*1000*1000 (overflows fp16) /1e6 -> uint8: nodes that must stay fp32."""

    def c(name: str, v: float) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(v, np.float32), name)

    nodes = [
        helper.make_node("Cast", ["tiles"], ["x"], name="cast_in", to=TensorProto.FLOAT),
        helper.make_node("Div", ["x", "k255"], ["u"], name="unit"),
        helper.make_node("Mul", ["u", "k1000"], ["a"], name="mul_a"),
        helper.make_node("Mul", ["a", "k1000"], ["big"], name="mul_big"),  # up to 1e6
        helper.make_node("Div", ["big", "k1e6"], ["v"], name="div_back"),
        helper.make_node("Mul", ["v", "k255"], ["s"], name="scale"),
        helper.make_node("Round", ["s"], ["r"], name="round"),
        helper.make_node("Cast", ["r"], ["out"], name="cast_out", to=TensorProto.UINT8),
        helper.make_node("Unsqueeze", ["out", "ax1"], ["planes"], name="add_plane_axis"),
    ]
    inits = [
        c("k255", 255.0),
        c("k1000", 1000.0),
        c("k1e6", 1e6),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
    ]
    return one_plane_model(nodes, "overflow", inits)


def one_plane_model(nodes: list[onnx.NodeProto], name: str, inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    """The nodes as a checked opset-20 model with an engine's I/O: uint8 (n, h, w, 1) tiles in, one
    uint8 (n, 1, h, w, 1) plane out."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("tiles", TensorProto.UINT8, ["n", "h", "w", 1])],
        [helper.make_tensor_value_info("planes", TensorProto.UINT8, ["n", 1, "h", "w", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(model, full_check=True)
    return model
