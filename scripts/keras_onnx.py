"""A Keras model to ONNX through tf2onnx (opset 17), as a user of Keras 3 with the TensorFlow
backend has to do it for models that tf2onnx.convert.from_keras cannot convert alone.

Two things in such a graph stop tf2onnx 1.17:

- Keras 3 runs a grouped convolution (ConvNeXt's depthwise Conv2D(groups=C)) as a function
  compiled by XLA (`_XlaMustCompile`, `_noinline`), because TensorFlow has no grouped
  convolution kernel on CPU. tf2onnx does not inline such a call: it stays a
  StatefulPartitionedCall node that no runtime can load. Without those two attributes the
  function is inlined and its Conv2D becomes an ONNX Conv with `group`.
- Keras's exact GELU computes erfc, for which tf2onnx has no rule. erfc(x) = 1 - erf(x) is
  written with ONNX's Erf.

Used by scripts/conformance_steps.py and fixtures/generate_keras.py. Needs tensorflow (the
CPU package will do), keras 3, tf2onnx and numpy.
"""

import numpy as np


def _erfc(ctx, node, name, args):
    """tf2onnx handler: Erfc(x) as 1 - Erf(x)."""
    from tf2onnx import utils

    node.type = "Erf"
    one = ctx.make_const(utils.make_name("one"), np.array(1, dtype=np.float32))
    return ctx.insert_new_node_on_output(
        "Sub", node.output[0], name=utils.make_name(node.name + "_erfc"),
        inputs=[one.output[0], node.output[0]])


def export(model, input_shape, path, opset=17):
    """Writes `model` (called with training=False) for inputs of `input_shape` to `path`."""
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec(input_shape, tf.float32, name="input")
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    compiled = ("_XlaMustCompile", "_noinline")
    nodes = list(graph_def.node)
    for f in graph_def.library.function:
        for key in compiled:
            if key in f.attr:
                del f.attr[key]
        nodes += list(f.node_def)
    for n in nodes:
        for key in compiled:
            if key in n.attr:
                del n.attr[key]
    tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs],
        opset=opset,
        custom_op_handlers={"Erfc": (_erfc, [])},
        output_path=path,
    )
