"""Annotators: what makes a control video for Wan VACE from any video's frames (`--control-from VIDEO
--control-kind KIND`), each a pure function of the frames it is given (so `--from` makes the same control again):

- edges: OpenCV's Canny on each frame's gray, thresholds `CANNY_LOW` / `CANNY_HIGH`;
- gray: the frames in gray (VACE colours them in);
- depth: a transformers depth model from `models/annotators/depth-anything-v2-small/` (Depth Anything V2 Small);
- pose: DWPose's two ONNX files from `models/annotators/dwpose/`, run through onnxruntime, drawn OpenPose-style.

Depth and pose are small separate downloads (`ANNOTATORS`, fetched by `video-gen models download NAME` into
`models/annotators/NAME/`); each says in one line what is missing and how to get it. This module imports none
of numpy, OpenCV, transformers, torch and onnxruntime at module level (each inside the functions that use it), so
the CLI starts without them (its request table reads `CONTROL_KINDS`, `video-gen models` reads `ANNOTATORS`).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidRequest

if TYPE_CHECKING:
    import numpy as np

CONTROL_KINDS = ("depth", "pose", "edges", "gray")
ANNOTATORS_DIRNAME = "annotators"  # under the models folder

# Canny's hysteresis thresholds on 8-bit gray: 100 and 200, the values of lllyasviel's ControlNet canny annotator
# and of VACE's own (ali-vilab/VACE, vace/annotators/canny.py), so the edges look like the ones VACE was trained on.
CANNY_LOW, CANNY_HIGH = 100, 200

DEPTH_FOLDER = "depth-anything-v2-small"
DEPTH_REPO = "depth-anything/Depth-Anything-V2-Small-hf"  # transformers' DepthAnythingForDepthEstimation, ~99 MB
POSE_FOLDER = "dwpose"
POSE_REPO = "yzd-v/DWPose"  # yolox_l.onnx (person detector, ~217 MB) and dw-ll_ucoco_384.onnx (~134 MB)
POSE_DETECTOR, POSE_ESTIMATOR = "yolox_l.onnx", "dw-ll_ucoco_384.onnx"


@dataclass(frozen=True)
class Annotator:
    """An annotator's download: the files of `repo` that go into models/annotators/`name`/ (sizes from the
    repositories' file listings)."""

    name: str
    kind: str  # the --control-kind it serves
    repo: str
    files: tuple[str, ...]
    description: str


ANNOTATORS = (
    Annotator(DEPTH_FOLDER, "depth", DEPTH_REPO, ("config.json", "model.safetensors", "preprocessor_config.json"),
              "Depth Anything V2 Small, for --control-kind depth (~99 MB)"),
    # The repository also holds .pth checkpoints of the same models: only the two ONNX files are fetched
    Annotator(POSE_FOLDER, "pose", POSE_REPO, (POSE_DETECTOR, POSE_ESTIMATOR),
              "DWPose (YOLOX-L person detector + RTMPose whole-body), for --control-kind pose through onnxruntime "
              "(~350 MB)"),
)
BY_NAME = {annotator.name: annotator for annotator in ANNOTATORS}


def annotators_dir(models_dir: str | os.PathLike) -> Path:
    return Path(models_dir) / ANNOTATORS_DIRNAME


def annotator_folder(kind: str, folder_of_annotators: str | os.PathLike) -> Path | None:
    """The installed folder of `kind`'s annotator (None for edges and gray, which need none); one line naming the
    folder and the download when it is missing or incomplete."""
    root = Path(folder_of_annotators)
    if kind == "depth":
        folder = root / DEPTH_FOLDER
        if not (folder / "config.json").is_file() or not (folder / "preprocessor_config.json").is_file():
            raise InvalidRequest("control_kind", f"depth needs the Depth Anything V2 annotator in {folder} (not "
                                                 f"installed); get it with `video-gen models download {DEPTH_FOLDER}`"
                                                 f" ({DEPTH_REPO}, ~99 MB)")
        return folder
    if kind == "pose":
        folder = root / POSE_FOLDER
        missing = [name for name in (POSE_DETECTOR, POSE_ESTIMATOR) if not (folder / name).is_file()]
        if missing:
            raise InvalidRequest("control_kind", f"pose needs the DWPose annotator in {folder} ({', '.join(missing)} "
                                                 f"missing); get it with `video-gen models download {POSE_FOLDER}` "
                                                 f"({POSE_REPO}, ~350 MB)")
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:  # a dependency, but an install may lack its wheel
            raise InvalidRequest("control_kind", "pose needs the onnxruntime package: .venv/bin/pip install "
                                                 "onnxruntime")
        return folder
    return None


def annotator_sha256(folder: Path) -> str:
    """One hash of an annotator's weight files (each file's name, a NUL and its SHA-256, in name order), for the
    metadata: the same hash means the same annotator."""
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix in (".safetensors", ".onnx", ".bin", ".json"):
            digest.update(file.name.encode("utf-8") + b"\0" + sha256_of_file(file).encode("ascii"))
    return digest.hexdigest()


def edges(frames: np.ndarray) -> np.ndarray:
    """White edges on black: OpenCV's Canny on each frame's gray (CANNY_LOW, CANNY_HIGH), as RGB."""
    import cv2
    import numpy as np

    out = [cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), CANNY_LOW, CANNY_HIGH) for frame in frames]
    return np.repeat(np.stack(out)[..., None], 3, axis=3)


def gray(frames: np.ndarray) -> np.ndarray:
    """The frames in gray (OpenCV's luma weights), as RGB: VACE colours them in."""
    import cv2
    import numpy as np

    out = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    return np.repeat(np.stack(out)[..., None], 3, axis=3)


# Depth runs this many frames per call: Depth Anything V2 Small at 518 px holds ~0.3 GB of activations per frame
# in float32 (estimated from its 24.8M parameters and 37x37 tokens of width 384; not measured).
DEPTH_BATCH = 8


def depth(frames: np.ndarray, folder: Path, *, device: str = "cpu") -> np.ndarray:
    """Relative depth (near = bright) from a transformers depth model in `folder` (Depth Anything V2 Small),
    resized back to the frame size and stretched to 0-255 per frame, as transformers' depth-estimation pipeline
    and VACE's depth annotator show it."""
    import numpy as np
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True).to(device).eval()
    height, width = frames.shape[1:3]
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), DEPTH_BATCH):
            batch = list(frames[start:start + DEPTH_BATCH])
            inputs = processor(images=batch, return_tensors="pt").to(device)
            predicted = model(**inputs).predicted_depth  # (B, h, w)
            predicted = torch.nn.functional.interpolate(predicted[:, None].float(), size=(height, width),
                                                        mode="bicubic", align_corners=False)[:, 0]
            for values in predicted.cpu().numpy():
                low, high = float(values.min()), float(values.max())
                scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
                out.append(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
    return np.repeat(np.stack(out)[..., None], 3, axis=3)


# ---- pose: DWPose (yzd-v/DWPose) through onnxruntime ------------------------------------------------------------
# A top-down estimator: YOLOX-L finds people, RTMPose (DWPose's distilled whole-body model, COCO-WholeBody's 133
# keypoints) places each one's keypoints in its box; drawn OpenPose-style (body, hands, face) on black, the
# DWPose preprocessor's picture that ComfyUI's VACE workflows feed the model.
DETECTOR_SIZE = (640, 640)  # YOLOX input (height, width), used when the ONNX file does not fix it
ESTIMATOR_SIZE = (384, 288)  # RTMPose input (height, width): dw-ll_ucoco_384
PERSON_SCORE, NMS_IOU, KEYPOINT_SCORE = 0.3, 0.45, 0.3  # DWPose's own thresholds
BOX_PADDING = 1.25  # RTMPose's crop: the box grown by a quarter
SIMCC_SPLIT = 2.0  # RTMPose's SimCC bins per input pixel
RTMPOSE_MEAN, RTMPOSE_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)  # ImageNet, on RGB
# COCO's 17 body keypoints in OpenPose's order of 18 (the neck, index 1, is the shoulders' middle)
OPENPOSE_FROM_COCO = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
BODY_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
              (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
BODY_COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
               (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
               (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
HAND_EDGES = tuple((0, finger * 4 + 1) if joint == 0 else (finger * 4 + joint, finger * 4 + joint + 1)
                   for finger in range(5) for joint in range(4))
FACE, LEFT_HAND, RIGHT_HAND = slice(23, 91), slice(91, 112), slice(112, 133)  # COCO-WholeBody's ranges


def pose(frames: np.ndarray, folder: Path) -> np.ndarray:
    """OpenPose-style skeletons on black, one picture per frame, from DWPose's two ONNX files in `folder`."""
    import numpy as np

    try:
        import onnxruntime
    except ImportError:
        raise InvalidRequest("control_kind", "pose needs the onnxruntime package: .venv/bin/pip install "
                                             "onnxruntime") from None
    providers = [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider")
                 if name in onnxruntime.get_available_providers()]
    detector = onnxruntime.InferenceSession(str(folder / POSE_DETECTOR), providers=providers)
    estimator = onnxruntime.InferenceSession(str(folder / POSE_ESTIMATOR), providers=providers)
    return np.stack([draw_pose(frame.shape[:2], estimate_keypoints(estimator, frame, detect_people(detector, frame)))
                     for frame in frames])


def _input_size(session, default: tuple[int, int]) -> tuple[int, int]:
    """(height, width) an ONNX model takes, from its first input's shape; `default` where the file leaves it open."""
    shape = session.get_inputs()[0].shape
    sides = shape[2:4] if len(shape) == 4 else ()
    return tuple(sides) if len(sides) == 2 and all(isinstance(side, int) for side in sides) else default


def detect_people(session, frame: np.ndarray) -> np.ndarray:
    """People's boxes (N, 4) x0, y0, x1, y1 in frame pixels, by YOLOX: the frame (BGR, as YOLOX was trained)
    scaled into the top-left of a grey 114 canvas, its raw grid output decoded over strides 8, 16 and 32."""
    import cv2
    import numpy as np

    size_h, size_w = _input_size(session, DETECTOR_SIZE)
    ratio = min(size_h / frame.shape[0], size_w / frame.shape[1])
    resized = cv2.resize(frame[..., ::-1], (int(frame.shape[1] * ratio), int(frame.shape[0] * ratio)),
                         interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size_h, size_w, 3), 114, np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    output = session.run(None, {session.get_inputs()[0].name: canvas.transpose(2, 0, 1)[None].astype(np.float32)})
    predictions = output[0][0]  # (anchors, 5 + classes): x, y, w, h, objectness, class scores
    grids, strides = [], []
    for stride in (8, 16, 32):
        rows, cols = size_h // stride, size_w // stride
        x, y = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack((x, y), axis=2).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    grids, strides = np.concatenate(grids), np.concatenate(strides)
    centres = (predictions[:, :2] + grids) * strides
    sides = np.exp(predictions[:, 2:4]) * strides
    scores = predictions[:, 4] * predictions[:, 5]  # objectness x the person class (COCO class 0)
    boxes = np.concatenate((centres - sides / 2, centres + sides / 2), axis=1) / ratio
    keep = _nms(boxes, scores, NMS_IOU, PERSON_SCORE)
    return boxes[keep]


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, threshold: float) -> list[int]:
    import numpy as np

    order = [index for index in np.argsort(-scores) if scores[index] > threshold]
    keep = []
    while order:
        best, order = order[0], order[1:]
        keep.append(best)
        if not order:
            break
        rest = boxes[order]
        x0 = np.maximum(boxes[best, 0], rest[:, 0])
        y0 = np.maximum(boxes[best, 1], rest[:, 1])
        x1 = np.minimum(boxes[best, 2], rest[:, 2])
        y1 = np.minimum(boxes[best, 3], rest[:, 3])
        overlap = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = lambda box: (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])  # noqa: E731
        ratio = overlap / (area(boxes[best]) + area(rest) - overlap + 1e-9)
        order = [index for index, value in zip(order, ratio) if value <= iou]
    return keep


def estimate_keypoints(session, frame: np.ndarray, boxes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each person's 133 keypoints (x, y in frame pixels) and scores, by RTMPose on the box grown by a quarter and
    widened to the model's aspect ratio, warped to its input; a keypoint is the peak of its SimCC x and y bins."""
    import cv2
    import numpy as np

    size_h, size_w = _input_size(session, ESTIMATOR_SIZE)
    people = []
    for box in boxes:
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)
        scale_w, scale_h = (box[2] - box[0]) * BOX_PADDING, (box[3] - box[1]) * BOX_PADDING
        if scale_w > scale_h * size_w / size_h:
            scale_h = scale_w * size_h / size_w
        else:
            scale_w = scale_h * size_w / size_h
        zoom = size_w / scale_w
        warp = np.array([[zoom, 0, size_w / 2 - zoom * centre[0]], [0, zoom, size_h / 2 - zoom * centre[1]]],
                        np.float32)
        crop = cv2.warpAffine(frame, warp, (size_w, size_h), flags=cv2.INTER_LINEAR)
        pixels = (crop.astype(np.float32) - RTMPOSE_MEAN) / RTMPOSE_STD
        simcc_x, simcc_y = session.run(None, {session.get_inputs()[0].name:
                                              pixels.transpose(2, 0, 1)[None].astype(np.float32)})[:2]
        x_bins, y_bins = simcc_x[0], simcc_y[0]  # (133, bins)
        points = np.stack((x_bins.argmax(1), y_bins.argmax(1)), axis=1).astype(np.float32) / SIMCC_SPLIT
        scores = np.minimum(x_bins.max(1), y_bins.max(1))
        # input pixels back to frame pixels: the inverse of the warp
        points = (points - [size_w / 2, size_h / 2]) / zoom + centre
        people.append((points, scores))
    return people


def draw_pose(shape: tuple[int, int], people) -> np.ndarray:
    """OpenPose's drawing on black (its limb colours, stick width 4): body (18 keypoints), hands, face dots."""
    import cv2
    import numpy as np

    height, width = shape
    canvas = np.zeros((height, width, 3), np.uint8)
    for points, scores in people:
        body = []
        for coco in OPENPOSE_FROM_COCO:
            if coco is None:  # the neck: between the shoulders when both are seen
                seen = scores[5] > KEYPOINT_SCORE and scores[6] > KEYPOINT_SCORE
                body.append(((points[5] + points[6]) / 2) if seen else None)
            else:
                body.append(points[coco] if scores[coco] > KEYPOINT_SCORE else None)
        for (start, end), color in zip(BODY_LIMBS, BODY_COLORS):
            if body[start] is None or body[end] is None:
                continue
            (x0, y0), (x1, y1) = body[start], body[end]
            length = math.hypot(x1 - x0, y1 - y0)
            angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
            polygon = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), 4), int(angle),
                                       0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, tuple(int(value * 0.6) for value in color))
        for point, color in zip(body, BODY_COLORS):
            if point is not None:
                cv2.circle(canvas, (int(point[0]), int(point[1])), 4, color, thickness=-1)
        for hand in (LEFT_HAND, RIGHT_HAND):
            hand_points, hand_scores = points[hand], scores[hand]
            for number, (start, end) in enumerate(HAND_EDGES):
                if hand_scores[start] > KEYPOINT_SCORE and hand_scores[end] > KEYPOINT_SCORE:
                    hue = int(number / len(HAND_EDGES) * 179)
                    color = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
                    cv2.line(canvas, tuple(int(v) for v in hand_points[start]), tuple(int(v) for v in hand_points[end]),
                             tuple(int(value) for value in color), 2)
            for point, score in zip(hand_points, hand_scores):
                if score > KEYPOINT_SCORE:
                    cv2.circle(canvas, (int(point[0]), int(point[1])), 3, (0, 0, 255), thickness=-1)
        for point, score in zip(points[FACE], scores[FACE]):
            if score > KEYPOINT_SCORE:
                cv2.circle(canvas, (int(point[0]), int(point[1])), 2, (255, 255, 255), thickness=-1)
    return canvas


def sha256_of_file(file: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def annotate(frames: np.ndarray, kind: str, folder: Path | None, *, device: str = "cpu") -> tuple[np.ndarray, dict]:
    """The control of `kind` made from `frames` (already at the output size), and what the metadata records of
    the annotator that made it: its name and settings (edges), or its folder's name and hash (depth, pose)."""
    if kind == "edges":
        return edges(frames), {"kind": kind, "name": "opencv-canny", "settings": {"low": CANNY_LOW, "high": CANNY_HIGH}}
    if kind == "gray":
        return gray(frames), {"kind": kind, "name": "gray"}
    made = depth(frames, folder, device=device) if kind == "depth" else pose(frames, folder)
    return made, {"kind": kind, "name": folder.name, "sha256": annotator_sha256(folder)}
