"""Small ONNX models generated at test time for the fault and untrusted-input tests.

- `make_onnx`: any input/output contract, outputs constant (wrong-shape model files);
- `make_yolo_stub`: the YOLO contract (input `images` [1, 3, S, S], output [1, 4+C, N], class
  names in the `names` metadata) with a constant output that detects one object per class at
  known boxes, so any `names` metadata (hostile strings included) reaches real detections.

Nothing here is committed as a binary: every test writes its models into its tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, TensorProto


def _save(graph, path: Path, metadata: dict[str, str] | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def make_onnx(path: Path, inputs: list[tuple[str, list]], outputs: list[tuple[str, list]],
              metadata: dict[str, str] | None = None) -> Path:
    """A model with these inputs and outputs (name, shape); every output is zeros."""
    nodes, outs = [], []
    for i, (name, shape) in enumerate(outputs):
        const = helper.make_tensor(f'c{i}', TensorProto.FLOAT, shape,
                                   np.zeros(int(np.prod(shape)), np.float32).tolist())
        nodes.append(helper.make_node('Constant', [], [name], value=const))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    return _save(helper.make_graph(nodes, 'wrong_contract', ins, outs), path, metadata)


def stub_boxes(count: int, side: int) -> list[tuple[float, float, float, float]]:
    """Boxes (x1, y1, x2, y2) in input pixels the stub detects: a row of squares, no overlap."""
    cell = side / max(count, 1)
    return [(i * cell + 0.1 * cell, 0.3 * side, (i + 0.9) * cell, 0.3 * side + 0.8 * cell)
            for i in range(count)]


def make_yolo_stub(path: Path, names: list[str] | dict, side: int = 64,
                   score: float = 0.9) -> Path:
    """A YOLO-contract model that detects object i of class i (score `score`) in every image.

    `names` is written to the `names` metadata exactly as Ultralytics does (the Python repr of
    a {id: name} dict), whatever the strings hold.
    """
    count = len(names)
    out = np.zeros((1, 4 + count, count), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(stub_boxes(count, side)):
        out[0, :4, i] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        out[0, 4 + i, i] = score
    table = names if isinstance(names, dict) else dict(enumerate(names))
    x = helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, side, side])
    y = helper.make_tensor_value_info('output0', TensorProto.FLOAT, list(out.shape))
    nodes = [
        # output = constant + 0 * mean(image): the output depends on the input, as in a model.
        helper.make_node('ReduceMean', ['images'], ['m'], keepdims=0),
        helper.make_node('Mul', ['m', 'zero'], ['z']),
        helper.make_node('Add', ['table', 'z'], ['output0'])]
    inits = [helper.make_tensor('zero', TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor('table', TensorProto.FLOAT, list(out.shape),
                                out.reshape(-1).tolist())]
    graph = helper.make_graph(nodes, 'yolo_stub', [x], [y], inits)
    return _save(graph, path, {'names': repr(table), 'stride': '32'})
