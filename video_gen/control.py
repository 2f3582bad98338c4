"""Control videos and masks for Wan VACE: reading them, taking the frames the output needs, fitting them to its
size, binarising masks, making a control from any video (the annotators of `annotators.py`), what the metadata
records, and a request's control from its check (before anything loads) to each segment's frames.

What diffusers' `WanVACEPipeline` (0.42.1) does with its inputs, and so what this module guarantees first:
- `video` is never cut to `num_frames`: more control frames than the output crashes ("negative dimension"), fewer
  only logs a warning and pads with zeros. So exactly `num_frames` frames are taken, resampled by time at the
  rate the model makes frames (never stretched), and a control that does not last as long as the video is refused.
- The size comes from the control frames, not `height` / `width`: a control of another size runs silently
  misaligned (the transformer pads its tokens with zeros). So every control and mask frame is fitted to exactly the
  output size, by the rule pictures follow (`images.fit_to_size`).
- The mask (white = generate, black = keep the control's pixels) is thresholded at 0.5 where the video is split
  and used raw where it is downsampled into the mask channels, so a grey mask means two things: binarised here.

This module depends on numpy, Pillow and imageio-ffmpeg (OpenCV, transformers and onnxruntime through
`annotators.py`, imported when used); it loads no model at import.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidRequest, first_line
from .annotators import CONTROL_KINDS, annotate, annotator_folder
from .images import fit_to_size, to_rgb

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# A mask pixel generates when its gray value is above half (diffusers thresholds mask > 0.5 of 255): 128 and up.
MASK_THRESHOLD = 128
# The control written beside the output: H.264 at crf 18, as outputs are (video_io). Measured on 9 Canny frames of
# skimage's astronaut at 256x256: the decoded MP4 differs by up to 67 levels near edges, but thresholded at 128 it
# equals the edges pixel for pixel (0 of 589,824 pixels), so what the user sees is what the model saw.
CONTROL_CRF = 18


@dataclass(frozen=True)
class Clip:
    """Frames read from a control or mask source, the ones the output needs already picked."""

    frames: np.ndarray  # (num_frames, H, W, 3) uint8 RGB, the source's own size
    indices: tuple[int, ...]  # which source frame each output frame is
    source_frames: int  # how many frames the source has
    source_fps: float | None  # None for a folder of frames (one frame per output frame)
    sha256: str
    path: Path


@dataclass(frozen=True)
class Control:
    """The control the model is given: `frames` at exactly the output size, and where they came from."""

    frames: np.ndarray  # (num_frames, height, width, 3) uint8 RGB
    clip: Clip
    annotator: dict | None = None  # what made it from a video (`make_control`), None for a control given as is
    notes: tuple[str, ...] = ()  # for the job's note: which source frames, how they were fitted


@dataclass(frozen=True)
class Mask:
    """The mask the model is given: 255 = generate, 0 = keep the control's pixels, at exactly the output size."""

    frames: np.ndarray  # (num_frames, height, width) uint8, only 0 and 255
    clip: Clip | None  # None for one picture used for every frame
    sha256: str
    path: Path


# ---- reading ----------------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder of frames: each frame file's name, a NUL, and its bytes, in the order the
    frames are read, so renaming or reordering frames changes it."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else _frame_files(path, "control")
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def source_indices(num_frames: int, fps: float, source_fps: float | None) -> list[int]:
    """The source frame shown at each output frame's time (i / fps): frame floor(i x source_fps / fps), so a 24 fps
    source taken at 16 fps gives 0, 1, 3, 4, 6, … and a 16 fps one 0, 1, 2, … (never stretched: the output lasts as
    long as the part of the source it shows). A folder of frames has no rate: one frame per output frame."""
    if not source_fps:
        return list(range(num_frames))
    # The epsilon absorbs float error where the product is a whole number (29.97 x 1001 / 1000 and the like)
    return [math.floor(index * source_fps / fps + 1e-6) for index in range(num_frames)]


def describe_indices(indices, source_fps: float | None, fps: float) -> str:
    """For the job's note: which source frames were used, in a line."""
    if not indices:
        return "no frames"
    if list(indices) == list(range(len(indices))):
        rate = f" ({source_fps:g} fps source at {fps:g} fps)" if source_fps else ""
        return f"source frames 0-{indices[-1]}, one per output frame{rate}"
    shown = ", ".join(str(index) for index in indices[:6])
    return (f"source frames {shown}, … {indices[-1]} (a {source_fps:g} fps source taken at {fps:g} fps: "
            f"{len(indices)} of the first {indices[-1] + 1})")


def read_clip(path: str | os.PathLike, *, num_frames: int, fps: float, field: str = "control") -> Clip:
    """The `num_frames` frames of a video file or a folder of frames that the output shows at `fps`, resampled by
    time (`source_indices`). Refuses a source that does not last as long as the video, in one line naming `field`
    and both lengths."""
    clip = _read_source(Path(path), lambda source_fps: source_indices(num_frames, fps, source_fps), field)
    _check_length(field, clip.source_frames, clip.source_fps, clip.indices, num_frames, fps)
    return clip


def _read_source(path: Path, indices_for, field: str) -> Clip:
    """The frames at `indices_for(source_fps)` of a video file or a folder of frames (whose rate is None), and how
    many frames it has. Indices past its end are left out of `frames` (the caller refuses those)."""
    if not path.exists():
        raise InvalidRequest(field, f"not found: {path}")
    if path.is_dir():
        files = _frame_files(path, field)
        indices = indices_for(None)
        frames = [_read_frame(files[index], field) for index in indices if index < len(files)]
        sizes = {frame.shape for frame in frames}
        if len(sizes) > 1:
            raise InvalidRequest(field, f"the frames in {path.name} are not all the same size "
                                        f"({', '.join(f'{w}x{h}' for h, w, _ in sorted(sizes))})")
        return Clip(np.stack(frames), tuple(indices), len(files), None, file_sha256(path), path)
    if path.suffix.lower() in FRAME_SUFFIXES:
        raise InvalidRequest(field, f"{path.name} is one picture; give a video file or a folder of frames")
    return _read_video(path, indices_for, field)


def _read_video(path: Path, indices_for, field: str) -> Clip:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path.absolute()), pix_fmt="rgb24")
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, ValueError, KeyError, IndexError, StopIteration) as error:
            raise InvalidRequest(field, f"{path.name} is not a video or a folder of frames this app can read "
                                        f"(MP4, WebM, MOV, GIF, …): {first_line(error)}") from None
        width, height = meta["size"]
        source_fps = float(meta.get("fps") or 0) or None
        indices = indices_for(source_fps)
        positions = {}
        for position, index in enumerate(indices):
            positions.setdefault(index, []).append(position)
        frames = np.zeros((len(indices), height, width, 3), np.uint8)
        count = 0
        try:
            # Every frame is read to count them (for the refusal and the metadata); only the used ones are kept, so
            # a long source costs decoding time, not memory.
            for count, raw in enumerate(reader, start=1):
                for position in positions.get(count - 1, ()):
                    frames[position] = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
        except RuntimeError as error:
            raise InvalidRequest(field, f"cannot decode {path.name} (damaged?): {first_line(error)}") from None
    finally:
        reader.close()
    if count == 0:
        raise InvalidRequest(field, f"{path.name} has no video frames")
    return Clip(frames, tuple(indices), count, source_fps, file_sha256(path), path)


def _check_length(field: str, available: int, source_fps: float | None, indices, num_frames: int,
                  fps: float) -> None:
    if indices and indices[-1] >= available:
        if source_fps:
            have = f"{available} frames at {source_fps:g} fps ({available / source_fps:.2f} s)"
        else:
            have = f"{available} frames"
        raise InvalidRequest(field, f"is shorter than the video: it has {have}, the video needs {num_frames} "
                                    f"frames at {fps:g} fps ({num_frames / fps:.2f} s, source frames up to "
                                    f"{indices[-1]}); give a longer {field} or ask for fewer frames")


def _frame_files(folder: Path, field: str) -> list[Path]:
    """A folder's picture files in natural order (frame2 before frame10)."""
    def natural(file: Path):
        return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", file.name)]

    files = sorted((file for file in folder.iterdir() if file.is_file() and file.suffix.lower() in FRAME_SUFFIXES),
                   key=natural)
    if not files:
        raise InvalidRequest(field, f"{folder.name} holds no frames ({', '.join(FRAME_SUFFIXES)} files); give a "
                                    f"video file or a folder of frames")
    return files


def _read_frame(file: Path, field: str) -> np.ndarray:
    try:
        with Image.open(file) as image:
            image.load()
            return np.asarray(to_rgb(ImageOps.exif_transpose(image)))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidRequest(field, f"cannot read the frame {file.name}: {first_line(error)}") from None


# ---- fitting ----------------------------------------------------------------------------------------
def fit_frames(frames: np.ndarray, width: int, height: int, mode: str = "crop") -> np.ndarray:
    """Every frame to exactly width x height by the rule pictures follow (`images.fit_to_size`: crop covers and cuts
    the overflow evenly, fit letterboxes on black); frames already that size are kept as they are."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(fit_to_size(Image.fromarray(frame), width, height, mode)) for frame in frames])


def prepare_control(path, *, num_frames: int, fps: float, width: int, height: int, resize_mode: str = "crop",
                    field: str = "control") -> Control:
    """A control video given as it is: the frames the output needs, fitted to its size."""
    clip = read_clip(path, num_frames=num_frames, fps=fps, field=field)
    notes = [f"{field}: {describe_indices(clip.indices, clip.source_fps, fps)}"]
    source_height, source_width = clip.frames.shape[1:3]
    if (source_width, source_height) != (width, height):
        notes.append(f"{field}: {source_width}x{source_height} fitted to {width}x{height} ({resize_mode})")
    return Control(fit_frames(clip.frames, width, height, resize_mode), clip, None, tuple(notes))


# ---- masks ------------------------------------------------------------------------------------------
def binarize_mask(frames: np.ndarray) -> np.ndarray:
    """(F, H, W) or (F, H, W, 3) uint8 to (F, H, W) uint8 of 0 and 255: white (gray 128 and up) = generate."""
    if frames.ndim == 4:
        # ITU-R 601 luma, as Pillow's convert("L") and diffusers' grayscale conversion weigh the channels
        frames = np.rint(frames[..., :3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114]))
    return np.where(frames >= MASK_THRESHOLD, 255, 0).astype(np.uint8)


def prepare_mask(path, control: Control, *, width: int, height: int, resize_mode: str = "crop",
                 field: str = "mask") -> Mask:
    """A mask for `control`: a video or folder with as many frames as the control's source and of its size (the
    same frames are taken, whatever the mask's own rate), or one picture of its size used for every frame; fitted
    like the control, then binarised (fitting blends edge pixels, so the threshold comes last)."""
    frames, mask_clip, sha256 = _mask_source(Path(path), control.clip, field)
    fitted = binarize_mask(fit_frames(frames, width, height, resize_mode))
    if mask_clip is None:  # one picture: every frame's mask
        fitted = np.repeat(fitted, len(control.clip.indices), axis=0)
    return Mask(fitted, mask_clip, sha256, Path(path))


def _mask_source(path: Path, clip: Clip, field: str) -> tuple[np.ndarray, Clip | None, str]:
    """A mask's frames as read (the frames `clip` took, or one picture), checked against the control's source:
    its size, and for a video or folder its length."""
    source_height, source_width = clip.frames.shape[1:3]
    if path.is_file() and path.suffix.lower() in FRAME_SUFFIXES:
        picture = _read_frame(path, field)
        _check_mask_size(field, picture.shape, source_width, source_height)
        return picture[None], None, file_sha256(path)
    mask_clip = _read_source(path, lambda _source_fps: list(clip.indices), field)
    if mask_clip.source_frames != clip.source_frames:
        raise InvalidRequest(field, f"has {mask_clip.source_frames} frames but the control has {clip.source_frames}; "
                                    f"give a mask of the control's length, or one picture for every frame")
    _check_mask_size(field, mask_clip.frames.shape, source_width, source_height)
    return mask_clip.frames, mask_clip, mask_clip.sha256


def _check_mask_size(field: str, shape, width: int, height: int) -> None:
    if tuple(shape[-3:-1]) != (height, width):
        raise InvalidRequest(field, f"is {shape[-2]}x{shape[-3]} but the control is {width}x{height}; give a mask "
                                    f"of the control's size")


def mask_images(mask: Mask) -> list[Image.Image]:
    """The mask as the pipeline takes it: one "L" picture per frame."""
    return [Image.fromarray(frame, "L") for frame in mask.frames]


def control_images(control: Control) -> list[Image.Image]:
    return [Image.fromarray(frame) for frame in control.frames]


# ---- making a control from a video (--control-from VIDEO --control-kind KIND) -------------------------------
def make_control(path, kind: str, *, num_frames: int, fps: float, width: int, height: int,
                 resize_mode: str = "crop", annotators_dir: str | os.PathLike = "models/annotators",
                 device: str = "cpu", field: str = "control_from") -> Control:
    """A control made from any video: its frames the output needs, fitted to the output size, then annotated at
    that size (so edges and poses are drawn at the resolution the model sees). Checks the annotator is installed
    before reading the video."""
    if kind not in CONTROL_KINDS:
        raise InvalidRequest("control_kind", f"must be one of {', '.join(CONTROL_KINDS)}, got {kind!r}")
    folder = annotator_folder(kind, annotators_dir)
    clip = read_clip(path, num_frames=num_frames, fps=fps, field=field)
    frames, annotator = annotate(fit_frames(clip.frames, width, height, resize_mode), kind, folder, device=device)
    notes = (f"{field}: {describe_indices(clip.indices, clip.source_fps, fps)}", f"{field}: {kind} control")
    return Control(frames, clip, annotator, notes)


# ---- a request's control: checked before anything loads, made at the job's turn, cut per segment ------------------
def _source(request) -> tuple[str, str] | None:
    """(field, path) of the video a request's control comes from: `control` as it is, or `control_from`."""
    if request.control:
        return "control", request.control
    if request.control_from:
        return "control_from", request.control_from
    return None


def check_request(request, *, frames: int, fps: float, annotators_dir: str | os.PathLike) -> tuple[str, ...]:
    """Before anything loads: the annotator is installed, the control (or the video it is made from) is a video
    or a folder of frames that lasts `frames` frames at `fps` (the model's frames at the rate it makes them), and
    the mask fits it (size, length). Refuses in one line naming the input; returns the notes (which source frames
    are used). Decodes the sources once (only the frames used are kept)."""
    source = _source(request)
    if source is None:
        return ()
    field, path = source
    if field == "control_from":
        annotator_folder(request.control_kind, annotators_dir)
    clip = read_clip(path, num_frames=frames, fps=fps, field=field)
    notes = [f"{field}: {describe_indices(clip.indices, clip.source_fps, fps)}"]
    source_height, source_width = clip.frames.shape[1:3]
    if (source_width, source_height) != (request.width, request.height):
        notes.append(f"{field}: {source_width}x{source_height} fitted to {request.width}x{request.height} "
                     f"({request.resize_mode})")
    if request.mask:
        _mask_source(Path(request.mask), clip, "mask")
    return tuple(notes)


@dataclass(frozen=True)
class ControlInputs:
    """A job's control and mask over all the frames the model makes (at the rate it makes them), made once at
    the job's turn; each segment of a long video takes its own frames of them (`segment`)."""

    control: Control
    mask: Mask | None

    def segment(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The control's (and mask's) frames start .. start + count - 1. Frames past the end repeat the last one:
        the planner makes a segment at the model's frame rule (4k + 1) and cuts the frames it did not ask for."""
        indices = np.minimum(np.arange(start, start + count), len(self.control.frames) - 1)
        return self.control.frames[indices], None if self.mask is None else self.mask.frames[indices]

    def metadata(self) -> dict:
        return metadata(self.control, self.mask)


def prepare_inputs(request, *, frames: int, fps: float, annotators_dir: str | os.PathLike,
                   device: str = "cpu") -> ControlInputs | None:
    """A request's control (given as it is, or made from `control_from` by its `control_kind` annotator on
    `device`) and mask, `frames` frames at `fps`, fitted to the request's size; None without a control."""
    source = _source(request)
    if source is None:
        return None
    field, path = source
    size = dict(num_frames=frames, fps=fps, width=request.width, height=request.height,
                resize_mode=request.resize_mode)
    if field == "control":
        made = prepare_control(path, **size)
    else:
        made = make_control(path, request.control_kind, **size, annotators_dir=annotators_dir, device=device)
    mask = prepare_mask(request.mask, made, width=request.width, height=request.height,
                        resize_mode=request.resize_mode) if request.mask else None
    return ControlInputs(made, mask)


def preview(path, mask=None, kind: str | None = None, *, longest_side: int = 512) -> Image.Image:
    """The page's look at a control: its first frame (as edges or gray when that is the kind; depth and pose are
    made when the job runs), the mask's first frame over it in red where the model generates."""
    frame = _first_frame(Path(path), "control")
    if kind in ("edges", "gray"):
        frame = annotate(frame[None], kind, None)[0][0]
    picture = Image.fromarray(frame)
    if mask:
        mask_path = Path(mask)
        raw = _read_frame(mask_path, "mask") if mask_path.suffix.lower() in FRAME_SUFFIXES and mask_path.is_file() \
            else _first_frame(mask_path, "mask")
        generate = binarize_mask(fit_frames(raw[None], picture.width, picture.height))[0] > 0
        tinted = np.asarray(picture).copy()
        tinted[generate] = (tinted[generate] * 0.5 + np.float32([255, 0, 0]) * 0.5).astype(np.uint8)
        picture = Image.fromarray(tinted)
    scale = longest_side / max(picture.size)
    if scale < 1:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
    return picture


def _first_frame(path: Path, field: str) -> np.ndarray:
    """A video's or a folder's first frame, without reading the rest."""
    if path.is_dir():
        return _read_frame(_frame_files(path, field)[0], field)
    if not path.is_file():
        raise InvalidRequest(field, f"not found: {path}")
    if path.suffix.lower() in FRAME_SUFFIXES:
        raise InvalidRequest(field, f"{path.name} is one picture; give a video file or a folder of frames")
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path.absolute()), pix_fmt="rgb24")
    try:
        width, height = next(reader)["size"]
        return np.frombuffer(next(reader), np.uint8).reshape(height, width, 3).copy()
    except (OSError, RuntimeError, ValueError, KeyError, StopIteration) as error:
        raise InvalidRequest(field, f"{path.name} is not a video or a folder of frames this app can read: "
                                    f"{first_line(error)}") from None
    finally:
        reader.close()

# ---- what is kept -------------------------------------------------------------------------------------
def write_control_video(frames: np.ndarray, path: str | os.PathLike, *, fps: float) -> Path:
    """The control the model saw as an H.264 MP4 (`<name>_control.mp4` beside the output), written under a
    temporary name (in the folder's `.partial` work area when it has one) and moved into place when complete."""
    import imageio_ffmpeg

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / ".partial"
    folder = work if work.is_dir() and not work.is_symlink() else target.parent
    temporary = folder / f".{target.name}.partial-{secrets.token_hex(8)}.mp4"
    height, width = frames.shape[1:3]
    if width % 2 or height % 2:  # yuv420p needs even sides; the output sizes here are multiples of 16
        raise InvalidRequest("control", f"{width}x{height} cannot be written as H.264 (odd side)")
    writer = imageio_ffmpeg.write_frames(
        str(temporary), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-crf", str(CONTROL_CRF), "-preset", "medium", "-movflags", "+faststart"])
    try:
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame, np.uint8))
        writer.close()
        os.replace(temporary, target)
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    return target


def control_path(output: str | os.PathLike) -> Path:
    """Where the control used for `output` is kept: clip.mp4 -> clip_control.mp4, a frames folder `frames` ->
    frames_control.mp4 beside it."""
    output = Path(output)
    stem = output.stem if output.suffix else output.name
    return output.with_name(f"{stem}_control.mp4")


def metadata(control: Control, mask: Mask | None = None) -> dict:
    """What the output's metadata records so that `--from` makes the same video again: each input's SHA-256, its
    frame count and rate, the source frames used, and the annotator (with its hash) that made the control."""
    clip = control.clip
    record = {"control": {"sha256": clip.sha256, "source_frames": clip.source_frames, "source_fps": clip.source_fps,
                          "frames": len(clip.indices), "source_indices": list(clip.indices)}}
    if control.annotator is not None:
        record["control"]["annotator"] = dict(control.annotator)
    if mask is not None:
        record["mask"] = {"sha256": mask.sha256, "frames": len(mask.frames),
                          "source_frames": mask.clip.source_frames if mask.clip is not None else 1}
    return record
