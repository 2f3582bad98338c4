"""Tiny annotators for the control tests, in the layout `video_gen.control` loads from `models/annotators/`:
- a REAL transformers Depth Anything (`DepthAnythingForDepthEstimation` + `DPTImageProcessor`) with random weights,
  saved like depth-anything/Depth-Anything-V2-Small-hf (config.json, model.safetensors, preprocessor_config.json);
- DWPose's two ONNX files (yolox_l.onnx, dw-ll_ucoco_384.onnx) as tiny graphs built with the `onnx` package, with
  DWPose's input and output layouts, whose outputs are fixed tensors (plus 0 x the input's mean, so the input is
  read): one person at a known box and keypoints at known SimCC bins, so the decoding can be checked exactly.
"""

from __future__ import annotations

from pathlib import Path

# The tiny DWPose: YOLOX on a 64x64 canvas (84 anchors over strides 8, 16, 32), RTMPose on a 32x24 crop.
DETECTOR_SIDE = 64
ESTIMATOR_SIZE = (32, 24)  # (height, width)
# The one person: an anchor of stride 8 at grid cell (column 3, row 4) with offsets (0.5, 0.5) and sides 16 px
PERSON_CELL, PERSON_SIDE = (3, 4), 16.0


def build_tiny_depth_anything(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny Depth Anything (a 2-layer DINOv2 of width 32, patch 14) that takes 28 px inputs."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    folder = Path(folder)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=28, out_features=["stage1", "stage2"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[16, 32],
                                 reassemble_factors=[2, 1], fusion_hidden_size=16, head_hidden_size=8,
                                 depth_estimation_type="relative")
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(folder)
    # Depth-Anything-V2-Small-hf's processor at 28 px instead of 518: aspect kept, sides multiples of 14, bicubic
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      resample=3, do_pad=False, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def _constant_graph(name: str, input_shape: list[int], outputs: dict):
    """An ONNX model whose outputs are the given arrays plus 0 x the mean of its input `input`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for output, value in outputs.items():
        initializers.append(numpy_helper.from_array(value.astype(np.float32), f"{output}_value"))
        nodes.append(helper.make_node("Add", [f"{output}_value", "nothing"], [output]))
        graph_outputs.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
                              graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.2x reads
    onnx.checker.check_model(model)
    return model


def build_tiny_dwpose(folder: str | Path, keypoints: dict[int, tuple[float, float]] | None = None) -> Path:
    """yolox_l.onnx and dw-ll_ucoco_384.onnx for one person: the detector finds it in the anchor PERSON_CELL (a
    second, weaker anchor on nearly the same box must be suppressed), the estimator puts keypoint k at the crop
    pixel `keypoints[k]` (x, y) with score 1 and every other keypoint at score 0."""
    import numpy as np
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    anchors = sum((DETECTOR_SIDE // stride) ** 2 for stride in (8, 16, 32))
    predictions = np.zeros((1, anchors, 85), np.float32)
    column, row = PERSON_CELL
    cells = DETECTOR_SIDE // 8
    side = np.log(PERSON_SIDE / 8)
    predictions[0, row * cells + column, :6] = (0.5, 0.5, side, side, 0.9, 0.9)
    predictions[0, row * cells + column + 1, :6] = (-0.4, 0.5, side, side, 0.8, 0.8)  # the same box, weaker
    onnx.save(_constant_graph("tiny_yolox", [1, 3, DETECTOR_SIDE, DETECTOR_SIDE], {"output": predictions}),
              folder / "yolox_l.onnx")
    height, width = ESTIMATOR_SIZE
    simcc_x = np.zeros((1, 133, width * 2), np.float32)
    simcc_y = np.zeros((1, 133, height * 2), np.float32)
    for index, (x, y) in (keypoints or {}).items():
        simcc_x[0, index, int(round(x * 2))] = 1.0
        simcc_y[0, index, int(round(y * 2))] = 1.0
    onnx.save(_constant_graph("tiny_rtmpose", [1, 3, height, width], {"simcc_x": simcc_x, "simcc_y": simcc_y}),
              folder / "dw-ll_ucoco_384.onnx")
    return folder
