"""Finding models: names, paths, the only installed one, and clear messages for broken folders."""

import json

import pytest

from video_gen import ModelNotFound
from video_gen.catalog import list_models, resolve_model


def test_name_path_and_only_installed(models_dir, tiny_model_path):
    assert resolve_model("tiny-svd", models_dir).family == "svd"
    assert resolve_model(str(tiny_model_path), "/nonexistent").path == tiny_model_path.resolve()
    assert resolve_model(None, models_dir).name == "tiny-svd"
    assert [m.name for m in list_models(models_dir)] == ["tiny-svd"]


def test_several_installed_asks_to_choose(copy_model):
    first = copy_model("a")
    copy_model("b")
    with pytest.raises(ModelNotFound, match=r"several models are installed \(a, b\)"):
        resolve_model(None, first.parent)


def test_nothing_installed_points_at_the_readme(tmp_path):
    with pytest.raises(ModelNotFound, match="no model installed.*models/README.md"):
        resolve_model(None, tmp_path)
    with pytest.raises(ModelNotFound, match="'svd-xt' is not installed.*none.*README"):
        resolve_model("svd-xt", tmp_path)


def test_incomplete_and_damaged_folders_say_what_is_missing(copy_model, tmp_path):
    folder = copy_model("broken")
    for file in (folder / "unet").iterdir():
        file.unlink()
    (folder / "unet").rmdir()
    with pytest.raises(ModelNotFound, match=r"incomplete: missing unet/"):
        resolve_model("broken", folder.parent)
    (folder / "model_index.json").write_text("{ not json")
    with pytest.raises(ModelNotFound, match="damaged"):
        resolve_model(str(folder), tmp_path)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "SomethingElsePipeline"}))
    with pytest.raises(ModelNotFound, match="cannot run yet"):
        resolve_model(str(folder), tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFound, match="expected model_index.json"):
        resolve_model(str(empty), tmp_path)


def test_truncated_weights_are_reported_as_a_broken_model(copy_model, photo, tmp_path):
    from video_gen import GenerationRequest, Generator

    folder = copy_model("truncated")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    generator = Generator(models_dir=folder.parent, outputs_dir=tmp_path / "out")
    with pytest.raises(ModelNotFound, match="could not be loaded.*README"):
        generator.generate(GenerationRequest(image=str(photo), width=64, height=64, num_frames=8,
                                             num_inference_steps=2))


def test_single_file_checkpoint_is_refused_clearly(tmp_path):
    checkpoint = tmp_path / "svd_xt.safetensors"
    checkpoint.write_bytes(b"\0" * 16)
    with pytest.raises(ModelNotFound, match="single-file"):
        resolve_model(str(checkpoint), tmp_path)


def test_a_model_given_as_a_path_is_read_as_it_is_not_looked_for_in_a_rescan(models_dir, tiny_model_path, tmp_path):
    """Issue 23: a job whose model is a path does not scan the models folder (nor the Hugging Face cache) again."""
    from video_gen.catalog import Catalog

    catalog = Catalog(models_dir)
    catalog.entries()
    scans = catalog.scans
    for _ in range(3):
        assert catalog.resolve(str(tiny_model_path)).family == "svd"
        assert catalog.resolve("tiny-svd").family == "svd"  # a name it knows
    assert catalog.scans == scans
    with pytest.raises(ModelNotFound):
        catalog.resolve("no-such-model")  # a name it does not know: one rescan, in case it was added since
    assert catalog.scans == scans + 1
