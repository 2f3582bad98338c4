"""The transformer families' shared parts: the `speed` option's checks and the prompt-embedding cache."""

from __future__ import annotations

import gc

import pytest

from video_gen import GenerationRequest
from video_gen.errors import InvalidRequest
from video_gen.families import prompts, spec_for
from video_gen.families.speed import SPEEDS, attention_backend, cache_config


def test_speed_must_be_one_of_the_choices():
    with pytest.raises(InvalidRequest) as error:
        GenerationRequest(speed="turbo").validate()
    assert str(error.value).startswith("speed:") and "first-block-cache" in str(error.value)
    assert "\n" not in str(error.value)
    assert GenerationRequest.from_dict({"speed": "taylorseer"}).speed == "taylorseer"


@pytest.mark.parametrize("family", ["svd", "animatediff", "modelscope"])
def test_unet_families_refuse_a_cache_hook(family):
    # diffusers' cache hooks apply to transformer blocks only: a UNet family must say so, not ignore it
    with pytest.raises(InvalidRequest, match="^speed: .*no cache hooks"):
        spec_for(family).check_request(GenerationRequest(image="x.png", prompt="a cat", speed="first-block-cache"))
    spec_for(family).check_request(GenerationRequest(image="x.png", prompt="a cat", speed="off"))


def test_every_speed_has_a_diffusers_config():
    assert cache_config("off") is None
    for speed in SPEEDS[1:]:
        assert type(cache_config(speed)).__name__.endswith("Config")
    assert attention_backend("cpu") == "native"  # never a *_hub backend: those download kernels


class Pipe:  # a stand-in for a pipeline object: the cache only keys on its identity
    pass


def test_the_prompt_cache_encodes_once_per_key_and_forgets_with_the_pipeline():
    pipe, encoded = Pipe(), []

    def encode(text):
        return lambda: encoded.append(text) or f"embeds of {text}"

    before = prompts.calls
    assert prompts.cached(pipe, ("a cat", ""), encode("a cat")) == "embeds of a cat"
    assert prompts.cached(pipe, ("a cat", ""), encode("a cat")) == "embeds of a cat"
    assert prompts.cached(pipe, ("a dog", ""), encode("a dog")) == "embeds of a dog"
    assert encoded == ["a cat", "a dog"] and prompts.calls == before + 2
    for number in range(prompts.MAX_PROMPTS + 3):
        prompts.cached(pipe, (str(number), ""), encode(str(number)))
    assert prompts.size(pipe) == prompts.MAX_PROMPTS  # bounded: oldest out
    prompts.clear(pipe)
    assert prompts.size(pipe) == 0
    prompts.cached(pipe, ("a cat", ""), encode("a cat"))
    del pipe
    gc.collect()
    assert not any(isinstance(key, Pipe) for key in prompts._caches.keys())  # unloaded with its pipeline
