"""Hostile and odd inputs through the page's API: a corpus of pictures and bad parameter sets.

Every file and every parameter set goes to a real server (`app.launch`, gradio_client, the tiny real
model). Each one either makes a video (odd but valid pictures: CMYK, 16-bit, palette, alpha, animated,
rotated, …) or comes back as one clear line naming the input; no traceback, no hang, no Pillow warning.
Afterwards the server still makes a normal video.
"""

from __future__ import annotations

import io
import random
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app import WEB_FAST, start_server

MAX_UPLOAD = "2MB"
OK, ANY = "ok", "any"  # ANY: a video, or a one-line image error (formats whose reading Pillow may change)


# ---- building the corpus --------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None, *, idat: bytes | None = None
         ) -> bytes:
    """A PNG written by hand, so headers and data can lie."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = idat if idat is not None else zlib.compress(rows, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _bomb_png(side: int) -> bytes:
    """side x side black 1-bit pixels: a few KB on disk, `side`² pixels once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return _png(side, side, 1, 0, None, idat=data)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _photo(size=(96, 72), mode="RGB") -> Image.Image:
    y, x = np.mgrid[0:size[1], 0:size[0]]
    pixels = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def build_corpus(folder: Path) -> list[tuple[str, Path, str]]:
    """(name, file, expected): expected is OK, ANY, "note:<text>" or "error:<text in the message>"."""
    rgb = _photo()
    gradient16 = (np.linspace(0, 65535, 96 * 72).reshape(72, 96)).astype(">u2")
    rgb16_rows = b"".join(b"\x00" + np.repeat(gradient16[row][:, None], 3, axis=1).tobytes() for row in range(72))
    transparent = rgb.convert("RGBA")
    transparent.putalpha(Image.linear_gradient("L").resize(rgb.size))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    frames = [_photo().rotate(angle) for angle in (0, 30, 60)]
    exif = Image.Exif()
    exif[0x0112] = 6
    exif8 = Image.Exif()
    exif8[0x0112] = 8
    png = _save(rgb, "PNG")
    jpeg = _save(rgb, "JPEG", quality=90)
    gif = _save(rgb, "GIF")
    webp = _save(rgb, "WEBP")
    rng = random.Random(7)
    files = {
        # odd but valid: a video, with a note where something was done the user should know
        "plain.png": (png, OK),
        "cmyk.jpg": (_save(rgb.convert("CMYK"), "JPEG"), OK),
        "gray16.png": (_save(Image.fromarray(gradient16.astype(np.uint16)), "PNG"), "note:16-bit"),
        "rgb16.png": (_png(96, 72, 16, 2, rgb16_rows), OK),
        "palette-transparent.png": (_save(palette, "PNG", transparency=0), "note:transparent"),
        "rgba.png": (_save(transparent, "PNG"), "note:transparent"),
        "gray-alpha.png": (_save(transparent.convert("LA"), "PNG"), "note:transparent"),
        "gray.png": (_save(rgb.convert("L"), "PNG"), OK),
        "bilevel.png": (_save(rgb.convert("1"), "PNG"), OK),
        "animated.gif": (_save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
                         "note:animated"),
        "animated.webp": (_save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100),
                          "note:animated"),
        "animated.png": (_save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100), "note:animated"),
        "rotated-6.jpg": (_save(rgb, "JPEG", exif=exif), OK),
        "rotated-8.jpg": (_save(rgb, "JPEG", exif=exif8), OK),
        "picture.bmp": (_save(rgb, "BMP"), OK),
        "picture.tiff": (_save(rgb, "TIFF"), OK),
        "float.tiff": (_save(Image.fromarray(np.linspace(-3, 7, 96 * 72, dtype=np.float32).reshape(72, 96)), "TIFF"),
                       "note:16-bit"),
        "one-pixel.png": (_save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), OK),
        "very-wide.png": (_save(Image.new("RGB", (2000, 4), (10, 200, 10)), "PNG"), OK),
        "png-named.jpg": (png, OK),
        "picture.ico": (_save(rgb, "ICO"), ANY),
        "picture.webp": (webp, OK),
        # broken, empty, not pictures, bombs: one clear line each
        "empty.png": (b"", "error:empty"),
        "text.png": (b"this is not a picture\n" * 10, "error:not a picture"),
        "page.jpg": (b"<!doctype html><html><body>hello</body></html>", "error:not a picture"),
        "random.png": (bytes(rng.randrange(256) for _ in range(4096)), "error:not a picture"),
        "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/>'
                        b"</svg>", "error:not a picture"),
        "document.pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "error:not a picture"),
        "archive.png": (b"PK\x03\x04" + b"\x00" * 200, "error:not a picture"),
        "truncated.png": (png[: len(png) // 2], "error:image:"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "error:image:"),
        "truncated.gif": (gif[: len(gif) // 2], "error:image:"),
        "truncated.webp": (webp[: len(webp) // 2], "error:image:"),
        "header-only.png": (png[:33], "error:image:"),
        "jpeg-start-only.jpg": (b"\xff\xd8\xff", "error:image:"),
        "garbage-idat.png": (_png(64, 64, 8, 2, None, idat=b"definitely not zlib data" * 4), "error:image:"),
        "bomb-400mp.png": (_bomb_png(20_000), "error:too many pixels"),
        "bomb-100mp.png": (_bomb_png(10_000), "error:too many pixels"),
        "bomb-gif-header.gif": (b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x3b",
                                "error:image:"),
        "zero-size.png": (_png(0, 0, 8, 2, b""), "error:image:"),
        "too-big.png": (png + b"\x00" * 3 * 2**20, "error:413|too large|[Ff]ile size"),
    }
    corpus = []
    for name, (data, expected) in files.items():
        path = folder / name
        path.write_bytes(data)
        corpus.append((name, path, expected))
    return corpus


BAD_PARAMETERS = [
    (dict(motion_bucket_id=0), "motion_bucket_id: must be from 1 to 255"),
    (dict(motion_bucket_id=256), "motion_bucket_id: must be from 1 to 255"),
    (dict(num_inference_steps=9), "num_inference_steps: must be from 10 to 50"),
    (dict(num_inference_steps=51), "num_inference_steps: must be from 10 to 50"),
    (dict(fps=0), "fps: must be a whole number from 1 to 60"),
    (dict(duration=0), "duration: must be from 1 to 10"),
    (dict(duration=11), "duration: must be from 1 to 10"),
    (dict(resolution="0x0"), "width:"),
    (dict(resolution="-64x64"), "resolution: expected WIDTHxHEIGHT"),
    (dict(resolution="64x64x64"), "resolution: expected WIDTHxHEIGHT"),
    (dict(resolution="99999x64"), "width:"),
    (dict(resolution="64 by 64"), "resolution: expected WIDTHxHEIGHT"),
    (dict(noise_aug_strength=1.5), "noise_aug_strength: must be from 0 to 1"),
    (dict(min_guidance_scale=-1), "min_guidance_scale: must be from 0 to 15"),
    (dict(max_guidance_scale=16), "max_guidance_scale: must be from 0 to 15"),
    (dict(decode_chunk_size=0), "decode_chunk_size: must be from 1 to 32"),
    (dict(crf=52), "crf: must be from 0 to 51"),
    (dict(output_format="exe"), "output_format: must be one of mp4, webm, png"),
    (dict(resize_mode="stretch"), "resize_mode: must be one of crop, fit"),
    (dict(loop="spiral"), "loop: must be one of none, pingpong, crossfade"),
    (dict(interpolation=9), "interpolation: must be one of"),
    (dict(memory_plan="turbo"), "memory_plan: must be one of auto, none, model, group, sequential"),
    (dict(memory_plan="model"), "memory_plan: 'model' offload needs a GPU"),
    (dict(model="../../etc/passwd"), "model: '../../etc/passwd' is not installed"),
    (dict(model="/etc"), "model: '/etc' is not installed"),
    (dict(seed="seven"), "seed"),
]


@pytest.fixture(scope="module")
def hostile_server(models_dir, tmp_path_factory):
    demo, running = start_server(models_dir, tmp_path_factory.mktemp("hostile"), tmp_path_factory.mktemp("temp"),
                                 "--max-file-size", MAX_UPLOAD)
    yield running
    demo.close()


def test_every_hostile_file_and_bad_parameter_set_gets_a_clear_answer(hostile_server, photo, tmp_path):
    from gradio_client import Client, handle_file

    from video_gen import video_io

    client = Client(hostile_server.url, verbose=False, download_files=str(tmp_path / "downloads"))
    corpus = build_corpus(tmp_path)
    assert len(corpus) + len(BAD_PARAMETERS) >= 40

    def call(picture: Path, **changes):
        return client.predict(image=handle_file(str(picture)), **{**WEB_FAST, **changes}, api_name="/generate")

    outcomes, problems = {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # in this process: the server is in it
        for name, path, expected in corpus:
            try:
                video, info, *_ = call(path)
                outcome = ("video", info)
            except Exception as error:  # noqa: BLE001 - every answer is collected, then checked
                outcome = ("error", " ".join(str(error).split("\n")[:1]), str(error))
            outcomes[name] = outcome
            if expected.startswith("error:"):
                pattern = expected.removeprefix("error:")
                if outcome[0] != "error" or not re.search(pattern, outcome[1]):
                    problems.append(f"{name}: expected an error matching {pattern!r}, got {outcome[:2]}")
                elif "Traceback" in outcome[2] or "\n" in outcome[2].strip() or "DecompressionBomb" in outcome[2]:
                    problems.append(f"{name}: not one clear line: {outcome[2]!r}")
            elif expected == ANY:
                if outcome[0] == "error" and not outcome[1].startswith("image:"):
                    problems.append(f"{name}: {outcome[1]!r}")
            else:
                if outcome[0] != "video":
                    problems.append(f"{name}: expected a video, got {outcome[1]!r}")
                    continue
                info = outcome[1]
                if info["frames"] != 8 or not Path(info["output"]).is_file():
                    problems.append(f"{name}: bad video {info}")
                if expected.startswith("note:") and not any(expected[5:] in note for note in info.get("notes", [])):
                    problems.append(f"{name}: no note {expected[5:]!r} in {info.get('notes')}")

        for changes, expected in BAD_PARAMETERS:
            try:
                call(photo, **changes)
                problems.append(f"{changes}: accepted")
            except Exception as error:  # noqa: BLE001
                message = str(error)
                if expected not in message or "Traceback" in message or "\n" in message.strip():
                    problems.append(f"{changes}: {message!r}")
    assert not problems, "\n".join(problems)

    # 16-bit pictures are scaled, not clipped to white: the first frame keeps the dark half of the gradient.
    frames, _ = video_io.read_video(outcomes["gray16.png"][1]["output"])
    assert frames[0].mean() < 200 and frames[0].min() < 60

    # The server still makes a normal video afterwards.
    video, info, *_ = call(photo, seed=99)
    assert Path(video).is_file() and info["frames"] == 8 and info["seed"] == 99
    counts = {"files": len(corpus), "parameter sets": len(BAD_PARAMETERS),
              "videos": sum(1 for outcome in outcomes.values() if outcome[0] == "video")}
    print(f"hostile corpus: {counts}")


# Every input of /generate with a value of the wrong type: each gets the one-line "field: what is allowed".
WRONG_TYPES = [
    dict(image=5), dict(image="not a handle_file"), dict(image={"path": 3}),
    dict(model=5), dict(model=["tiny-svd"]),
    dict(duration={"seconds": 1}), dict(duration="1"), dict(duration=[1.5]),
    dict(fps=[8]), dict(fps="8"), dict(fps=True),
    dict(resolution=64), dict(resolution=[64, 64]),
    dict(motion_bucket_id="lots"), dict(num_inference_steps=[10]), dict(seed="seven"), dict(seed=1.5),
    dict(noise_aug_strength="a bit"), dict(min_guidance_scale={}), dict(max_guidance_scale=[5.0]),
    dict(decode_chunk_size="8"), dict(output_format=3), dict(crf="high"), dict(resize_mode=1),
    dict(live_preview="yes"), dict(loop=True), dict(interpolation="two"), dict(prompt=5), dict(negative_prompt=[1]),
    dict(image_strength="strong"), dict(memory_plan=2), dict(last_image=3), dict(last_image="a path"),
    dict(speed=3), dict(upscale=2), dict(keyframe_images=5), dict(keyframe_images=["a path"]),
    dict(keyframe_frames=[8]), dict(loras=5), dict(loras=[{"name": 5}]),
    dict(control_video=5), dict(control_video={"path": 3}), dict(control_type=3), dict(control_mask=[1]),
    dict(audio=True), dict(audio="loud"), dict(model_enhancer=1),
]


def test_every_input_of_generate_with_a_wrong_type_gets_a_one_line_error(hostile_server, photo, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(hostile_server.url, verbose=False, download_files=str(tmp_path / "downloads"))
    inputs = [parameter["parameter_name"]
              for parameter in client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"][
                  "parameters"]]
    assert not set(inputs) - {name for case in WRONG_TYPES for name in case}, "an input is never sent a wrong type"
    problems = []
    for case in WRONG_TYPES:
        (name, _value), = case.items()
        try:
            client.predict(**{"image": handle_file(str(photo)), **WEB_FAST, **case}, api_name="/generate")
            problems.append(f"{case}: accepted")
        except Exception as error:  # noqa: BLE001 - every answer is collected, then checked
            message = str(error)
            if (not isinstance(error, AppError) or not message.startswith(f"{name}: ") or "\n" in message.strip()
                    or "upstream" in message):
                problems.append(f"{case}: {type(error).__name__} {message!r}")
    assert not problems, "\n".join(problems)
    video, info, *_ = client.predict(image=handle_file(str(photo)), **WEB_FAST, api_name="/generate")
    assert Path(video).is_file() and info["frames"] == 8
