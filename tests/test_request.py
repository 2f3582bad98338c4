"""GenerationRequest: validation names the field and the allowed range; JSON round-trips."""

import json

import pytest

from video_gen import GenerationRequest, InvalidRequest


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"num_frames": 0}, "num_frames", "from 1 to 1801"),
        ({"fps": 0}, "fps", "from 1 to 60"),
        ({"motion_bucket_id": 300}, "motion_bucket_id", "from 1 to 255"),
        ({"width": 100}, "width", "multiple of 8"),
        ({"height": 30}, "height", "from 64 to 2048"),
        ({"num_inference_steps": 0}, "num_inference_steps", "from 1 to 150"),
        ({"noise_aug_strength": 1.5}, "noise_aug_strength", "from 0 to 1"),
        ({"decode_chunk_size": 0}, "decode_chunk_size", "from 1 to 128"),
        ({"min_guidance_scale": 4.0, "max_guidance_scale": 2.0}, "min_guidance_scale", "must not exceed"),
        ({"seed": -5}, "seed", "-1 or 0 (random)"),
        ({"output_format": "avi"}, "output_format", "mp4, webm, gif, png"),
        ({"resize_mode": "stretch"}, "resize_mode", "crop, fit"),
        ({"crf": 60}, "crf", "from 0 to 51"),
        ({"output_path": "a.webm", "output_format": "mp4"}, "output_path", "make them agree"),
    ],
)
def test_validation_names_field_and_range(changes, field, words):
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest(image="x.png", **changes).validate()
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith(f"{field}: ") and words in message
    assert "\n" not in message


def test_valid_request_passes_and_none_means_model_default():
    request = GenerationRequest(image="x.png", width=1024, height=576, num_frames=25).validate()
    filled = request.with_defaults({"fps": 7, "num_frames": 14, "motion_bucket_id": 127})
    assert (filled.fps, filled.num_frames, filled.motion_bucket_id) == (7, 25, 127)
    assert filled.output_format == "mp4"
    assert GenerationRequest(output_path="clip.webm").with_defaults({}).output_format == "webm"


@pytest.mark.parametrize("seed", [-1, 0])
def test_random_seed_is_drawn_and_reported(seed):
    drawn = {GenerationRequest(seed=seed).with_seed().seed for _ in range(20)}
    assert all(1 <= value < 2**32 for value in drawn)
    assert len(drawn) > 1
    assert GenerationRequest(seed=1234).with_seed().seed == 1234


def test_json_round_trip_and_seed_document_keys():
    request = GenerationRequest(image="cat.png", model="svd-xt", num_frames=14, fps=6, motion_bucket_id=90,
                                noise_aug_strength=0.1, max_guidance_scale=2.5, seed=42, prompt="é ✓")
    assert GenerationRequest.from_json(request.to_json()) == request
    legacy = GenerationRequest.from_dict({"image_path": "cat.png", "guidance_scale": 2.5, "num_frames": 14.0,
                                          "seed": "42", "output_path": "out.mp4"})
    assert (legacy.image, legacy.max_guidance_scale, legacy.num_frames, legacy.seed) == ("cat.png", 2.5, 14, 42)
    assert json.loads(legacy.to_json())["max_guidance_scale"] == 2.5


@pytest.mark.parametrize(
    "data, field",
    [({"bogus": 1}, "bogus"), ({"num_frames": "many"}, "num_frames"), ({"fps": True}, "fps"),
     ({"noise_aug_strength": "lots"}, "noise_aug_strength"), ({"image": 5}, "image")],
)
def test_json_bad_keys_and_types_name_the_key(data, field):
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest.from_dict(data)
    assert caught.value.field == field


def test_json_that_is_not_an_object():
    with pytest.raises(InvalidRequest, match="request: not valid JSON"):
        GenerationRequest.from_json("{nope")
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        GenerationRequest.from_json("[1, 2]")


def test_importing_the_package_loads_no_torch():
    import subprocess
    import sys

    code = ("import sys, video_gen, video_gen.request, video_gen.events, video_gen.errors, video_gen.catalog; "
            "from video_gen import GenerationRequest; print('torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_command_line_starts_without_numpy():
    """`video-gen` reads annotators' CONTROL_KINDS and ANNOTATORS and upscale's DOWNLOADS at start-up; numpy (about
    0.1 s to import) comes only with the work that uses it."""
    import subprocess
    import sys

    code = "import sys, video_gen.cli; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
