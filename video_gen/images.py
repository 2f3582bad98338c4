"""Reading the user's picture and fitting it to the video's size without distortion."""

from __future__ import annotations

import contextlib
import math
import os
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidRequest, first_line

# A 50 MB upload or a 100-megapixel image is far beyond any photo a video model needs, and the pixel
# limit stops decompression bombs before Pillow spends minutes and gigabytes decoding them.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own bomb threshold, so both checks agree


def check_image_file(path: str | os.PathLike) -> list[str]:
    """Check a picture's file and header without decoding its pixels; return notes for the user.

    Raises InvalidRequest for a missing, empty, too big, non-image or too-many-pixel file. Run it
    before anything else opens the file (Gradio's upload handling included): Pillow's own bomb check
    only warns below twice its limit and then decodes anyway. The notes say what will be done to the
    picture that the user might not expect (first frame of an animation, transparency on white, …).
    """
    if path is None or str(path) == "":
        raise InvalidRequest("image", "missing: give the path of a picture (PNG, JPEG, WebP, …)")
    name = os.path.basename(str(path))
    if not os.path.exists(path):
        raise InvalidRequest("image", f"file not found: {path}")
    if not os.path.isfile(path):
        raise InvalidRequest("image", f"not a file: {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise InvalidRequest("image", f"the file is empty (0 bytes): {name}")
    if size > MAX_IMAGE_BYTES:
        raise InvalidRequest("image", f"the file is {size / 2**20:.0f} MB; at most {MAX_IMAGE_BYTES // 2**20} MB allowed")
    try:
        with _bombs_are_errors(), Image.open(path) as image:
            _check_pixels(image)
            return _notes(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _too_many_pixels() from None
    except UnidentifiedImageError:
        raise InvalidRequest("image", f"not a picture this app can read (PNG, JPEG, WebP, BMP, …): {name}") from None
    except (OSError, SyntaxError, ValueError) as error:  # a header that lies or ends early
        raise InvalidRequest("image", f"cannot read the picture {name}: {first_line(error)}") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """A picture's displayed size (its EXIF rotation applied), from its header: no pixels are decoded. Checks the
    file first (`check_image_file`: InvalidRequest naming what is wrong)."""
    check_image_file(path)
    with Image.open(path) as image:
        return displayed_size(image)


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """An open picture's size as it is shown: width and height swapped for the EXIF orientations turned by 90
    degrees (5-8). Reads the header only."""
    width, height = image.size
    return (height, width) if image.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (width, height)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as 8-bit RGB: EXIF orientation applied, transparency composited on white, 16-bit
    scaled, an animation's first frame. Checks the file first (`check_image_file`)."""
    check_image_file(path)
    name = os.path.basename(str(path))
    try:
        with _bombs_are_errors(), Image.open(path) as image:
            _check_pixels(image)
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _too_many_pixels() from None
    except UnidentifiedImageError:
        raise InvalidRequest("image", f"not a picture this app can read (PNG, JPEG, WebP, BMP, …): {name}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # truncated or corrupt pixel data
        raise InvalidRequest("image", f"cannot read the picture {name} (truncated or damaged?): "
                                      f"{first_line(error)}") from None


@contextlib.contextmanager
def _bombs_are_errors():
    """Pillow only warns about a picture between its pixel limit and twice that, then decodes it all."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _check_pixels(image: Image.Image) -> None:
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise InvalidRequest("image", f"{image.width}x{image.height} pixels is too large; at most "
                                      f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels allowed")
    if image.width < 1 or image.height < 1:
        raise InvalidRequest("image", f"{image.width}x{image.height} pixels: the picture has no pixels")


def _too_many_pixels() -> InvalidRequest:
    return InvalidRequest("image", f"too many pixels (a decompression bomb?); at most "
                                   f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels allowed")


def _notes(image: Image.Image) -> list[str]:
    """What open_image will do to this picture that changes what the user sees, from its header."""
    notes = []
    frames = getattr(image, "n_frames", 1)
    if getattr(image, "is_animated", False) and frames > 1:
        notes.append(f"the picture is animated ({frames} frames): only its first frame is used")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        notes.append("transparent parts are shown on white")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        notes.append("16-bit picture: scaled to 8 bits")
    if image.mode == "CMYK":
        notes.append("CMYK picture: converted to RGB")
    return notes


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white (what a viewer shows for a transparent PNG)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping everything above 255 to white.
        image = image.point(lambda value: value / 256).convert("L")
    elif image.mode == "F":
        # 32-bit float (some TIFFs): stretch its own range to 0-255; clipping would make it black or white.
        low, high = image.getextrema()
        scale = 255.0 / (high - low) if high > low else 0.0
        image = image.point(lambda value: (value - low) * scale).convert("L")
    return image.convert("RGB")


def fit_to_size(image: Image.Image, width: int, height: int, mode: str = "crop") -> Image.Image:
    """Scale `image` to exactly width x height without distortion.

    crop: cover the target and cut the overflow evenly from both sides (a plain resize
    would squash non-16:9 photos); fit: the whole picture, centred on black bars.
    """
    if image.size == (width, height):
        return image
    if mode == "crop":
        scale = max(width / image.width, height / image.height)
        size = (max(width, math.ceil(image.width * scale)), max(height, math.ceil(image.height * scale)))
        resized = image.resize(size, Image.Resampling.LANCZOS)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return resized.crop((left, top, left + width, top + height))
    if mode == "fit":
        scale = min(width / image.width, height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        canvas = Image.new("RGB", (width, height), (0, 0, 0))
        canvas.paste(image.resize(size, Image.Resampling.LANCZOS), ((width - size[0]) // 2, (height - size[1]) // 2))
        return canvas
    raise InvalidRequest("resize_mode", f"must be crop or fit, got {mode!r}")
