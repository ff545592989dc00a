"""Small ONNX models with the input/output contract of the Depth Anything V2 exports.

No Depth Anything V2 weights exist on this machine, so the tests load models generated here at
test time: same input (NCHW float32 image, ImageNet-normalised, named `image` or `pixel_values`)
and output ([1, H, W] or [1, 1, H, W], named `depth` or `predicted_depth`) as the official
exports, but the output is a known function of the input:

    out[y, x] = gain * mean over channels of input[:, y, x] + offset

so a test can compute what every output pixel must be from the image colours and check the
normalisation, the resizing and the orientation of the whole pre- and post-processing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, TensorProto

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def make_contract_model(path: Path, *, input_name: str = 'image', output_name: str = 'depth',
                        output_rank: int = 3, fixed_hw: tuple[int, int] | None = None,
                        gain: float = 1.0, offset: float = 3.0) -> Path:
    """Write a DA-V2-contract model whose output is gain * channel mean + offset."""
    h, w = fixed_hw if fixed_hw else ('height', 'width')
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, h, w])
    out_shape = [1, 1, h, w] if output_rank == 4 else [1, h, w]
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)
    inits = [helper.make_tensor('gain', TensorProto.FLOAT, [], [gain]),
             helper.make_tensor('offset', TensorProto.FLOAT, [], [offset])]
    nodes = [helper.make_node('ReduceMean', [input_name], ['m'], axes=[1], keepdims=1),
             helper.make_node('Mul', ['m', 'gain'], ['g']),
             helper.make_node('Add', ['g', 'offset'],
                              [output_name if output_rank == 4 else 'a'])]
    if output_rank == 3:
        inits.append(helper.make_tensor('axes', TensorProto.INT64, [1], [1]))
        nodes.append(helper.make_node('Squeeze', ['a', 'axes'], [output_name]))
    graph = helper.make_graph(nodes, 'dav2_contract', [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def expected_output(rgb: np.ndarray, gain: float = 1.0, offset: float = 3.0) -> np.ndarray:
    """What the contract model outputs for RGB uint8 pixels (any shape ending in 3)."""
    norm = (rgb.astype(np.float64) / 255.0 - MEAN) / STD
    return gain * norm.mean(axis=-1) + offset


def grey_for_output(value: float, gain: float = 1.0, offset: float = 3.0) -> int:
    """The grey level (R = G = B) whose output is nearest to `value`."""
    levels = np.arange(256)
    outs = expected_output(np.stack([levels] * 3, axis=-1), gain, offset)
    return int(levels[np.argmin(np.abs(outs - value))])
