"""Reading the user's picture and fitting it to the video's size without distortion."""

from __future__ import annotations

import math
import os
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidRequest

# A 50 MB upload or a 100-megapixel image is far beyond any photo a video model needs, and the pixel
# limit stops decompression bombs before Pillow spends minutes and gigabytes decoding them.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own bomb threshold, so both checks agree


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB with its EXIF orientation applied and transparency composited on white."""
    if path is None or str(path) == "":
        raise InvalidRequest("image", "missing: give the path of a picture (PNG, JPEG, WebP, …)")
    if not os.path.exists(path):
        raise InvalidRequest("image", f"file not found: {path}")
    if not os.path.isfile(path):
        raise InvalidRequest("image", f"not a file: {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise InvalidRequest("image", f"the file is empty: {path}")
    if size > MAX_IMAGE_BYTES:
        raise InvalidRequest("image", f"the file is {size / 2**20:.0f} MB; at most {MAX_IMAGE_BYTES // 2**20} MB allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise InvalidRequest(
                        "image", f"{image.width}x{image.height} pixels is too large; at most "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels allowed"
                    )
                image.seek(0)  # animated GIF/WebP: the first frame
                image.load()
                image = ImageOps.exif_transpose(image)
                return to_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InvalidRequest(
            "image", f"too many pixels (a decompression bomb?); at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels allowed"
        ) from None
    except UnidentifiedImageError:
        raise InvalidRequest("image", f"not a picture Pillow can read (PNG, JPEG, WebP, BMP, …): {path}") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt files
        raise InvalidRequest("image", f"cannot read the picture {path}: {error}") from None


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
    return image.convert("RGB")


def fit_to_size(image: Image.Image, width: int, height: int, mode: str = "crop") -> Image.Image:
    """Scale `image` to exactly width x height without distortion.

    crop: cover the target and cut the overflow evenly from both sides (the seed's plain
    resize squashed non-16:9 photos); fit: the whole picture, centred on black bars.
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
