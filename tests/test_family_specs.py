"""The family specs are the only table of families: what reads them, and that the README's table agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from video_gen import GenerationRequest, InvalidRequest
from video_gen.families import specs
from video_gen.families.spec import SVD_MEMORY
from video_gen.planner import plan_length

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_family_is_in_the_readme_table_with_its_label_and_name():
    table = README.read_text().split("### Families", 1)[1].split("\n\n", 2)[1]
    for spec in specs():
        assert f"| {spec.label} (`{spec.name}`) |" in table, f"README's families table lacks {spec.name}"


def test_request_level_rules_come_from_the_specs():
    schedulers = {name for spec in specs() for name in spec.schedulers}
    with pytest.raises(InvalidRequest, match="^scheduler: must be one of"):
        GenerationRequest(scheduler="no-such-sampler").validate()
    for name in schedulers:
        GenerationRequest(scheduler=name).validate()


def test_the_planner_keeps_to_a_frame_rule():
    plan = plan_length(50, 16, native_frames=81, native_fps=16, interpolation=1, frame_step=4)
    assert plan.segment_frames == (50,) and plan.generated_frames == (53,)  # 4k+1, the extra 3 are cut
    plan = plan_length(200, 16, native_frames=81, native_fps=16, interpolation=1, frame_step=4)
    assert sum(plan.segment_frames) - (plan.segments - 1) == 200
    assert all((count - 1) % 4 == 0 for count in plan.generated_frames)


def test_latent_tokens_follow_the_family_compression():
    assert SVD_MEMORY.latent_tokens(25, 1024, 576) == 2 * 25 * 128 * 72
    from dataclasses import replace

    wan_like = replace(SVD_MEMORY, temporal_compression=4)
    assert wan_like.latent_tokens(81, 832, 480) == 2 * 21 * 104 * 60
