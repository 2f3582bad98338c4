"""Input pictures: orientation, colour modes and transparency, and fitting without distortion."""

import numpy as np
import pytest
from PIL import Image

from video_gen import InvalidRequest
from video_gen.images import fit_to_size, open_image


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # blue on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    opened = open_image(path)
    assert opened.size == (20, 40)
    top = np.asarray(opened)[2, 10]
    assert top[2] > 200 and top[0] < 60  # blue is now on top


def test_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(path)
    opened = open_image(path)
    assert opened.mode == "RGB"
    assert opened.getpixel((5, 5)) == (255, 255, 255)
    assert opened.getpixel((0, 0)) == (255, 0, 0)


def test_palette_with_transparency_and_16_bit(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30] + [200, 0, 0] * 255)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    assert open_image(tmp_path / "p.png").getpixel((1, 1)) == (255, 255, 255)

    deep = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    deep.save(tmp_path / "deep.png")
    value = open_image(tmp_path / "deep.png").getpixel((0, 0))
    assert 120 <= value[0] <= 135  # scaled to 8 bits, not clipped to white


@pytest.mark.parametrize("content, words", [(b"", "empty"), (b"not an image at all", "not a picture"),
                                            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "cannot read")])
def test_bad_files_give_one_line(tmp_path, content, words):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InvalidRequest) as caught:
        open_image(path)
    assert caught.value.field == "image" and words in str(caught.value)


def test_missing_image():
    with pytest.raises(InvalidRequest, match="image: file not found"):
        open_image("/nonexistent/picture.png")
    with pytest.raises(InvalidRequest, match="image: missing"):
        open_image("")


def test_cover_crop_keeps_proportions(tmp_path):
    # A 4:3 picture of a circle stays a circle in 16:9: scaled to cover, then centre-cropped.
    size = 120
    y, x = np.mgrid[0:90, 0:size]
    disk = ((x - 60) ** 2 + (y - 45) ** 2 <= 30**2)
    image = Image.fromarray(np.where(disk[..., None], 0, 255).astype("uint8").repeat(3, axis=2))
    cropped = np.asarray(fit_to_size(image, 160, 96, "crop"))[..., 0] < 128
    rows, cols = np.nonzero(cropped)
    height, width = rows.max() - rows.min(), cols.max() - cols.min()
    assert abs(height - width) <= 2  # a squash (plain resize) would make it 1.33x wider
    assert cropped.shape == (96, 160)


def test_fit_pads_instead_of_cropping():
    image = Image.new("RGB", (100, 100), (255, 255, 255))
    fitted = fit_to_size(image, 160, 80, "fit")
    pixels = np.asarray(fitted)
    assert fitted.size == (160, 80)
    assert (pixels[:, :35] == 0).all() and (pixels[:, 125:] == 0).all()  # bars left and right
    assert (pixels[:, 45:115] == 255).all()
