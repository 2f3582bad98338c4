"""Batches on Ray: a local cluster started once for this module, in-process, on loopback only (dashboard off),
with 2 CPUs: two workers of one core each. The same tiny real SVD model as every other test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_batch import OPTIONS, six_lines

from video_gen import batch, video_io

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
batch_ray = pytest.importorskip("video_gen.batch_ray")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """Ray on this machine only: 127.0.0.1, no dashboard, two CPUs (the two workers' cores)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def frames_of(entry: dict) -> np.ndarray:
    return video_io.read_video(entry["output"])[0]


def entries_of(path: Path) -> list[dict]:
    return [json.loads(raw) for raw in path.read_text().splitlines()]


def test_a_batch_on_two_ray_workers_gives_the_local_frames_bit_for_bit_in_line_order(models_dir, tmp_path):
    import torch

    from video_gen import Generator

    shots = six_lines(tmp_path)
    local_results, ray_results = tmp_path / "local.results.jsonl", tmp_path / "ray.results.jsonl"
    local = Generator(models_dir=models_dir, outputs_dir=tmp_path / "local-outputs")
    # The workers compute with one thread each (their one core). On the CPU the thread count decides the order of
    # float sums: the same job with 2 threads instead of 1 differed by 1 in 11 of 98,304 values. So the local run
    # uses one thread too; what must not matter is where the job runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch.run_local(batch.read_batch([shots], OPTIONS), local, batch.Results(local_results))
    finally:
        torch.set_num_threads(threads)

    # The workers write into a folder of their own, as on a node that cannot see the outputs folder: every
    # video is sent back as bytes and written by the driver into its outputs folder.
    outputs, worker_outputs = tmp_path / "ray-outputs", tmp_path / "worker-outputs"
    summary = batch_ray.run_ray(batch.read_batch([shots], OPTIONS), batch.Results(ray_results), models_dir=models_dir,
                                outputs_dir=outputs, cpus_per_worker=1, worker_outputs_dir=worker_outputs)

    assert summary.ran == [1, 2, 3, 4, 5, 6] and not summary.errors, summary.errors
    on_ray, on_local = entries_of(ray_results), entries_of(local_results)
    assert [entry["line"] for entry in on_ray] == [1, 2, 3, 4, 5, 6]
    assert len({entry["worker"] for entry in on_ray}) == 2, "not spread over two workers"
    for ray_entry, local_entry in zip(on_ray, on_local):
        assert ray_entry["sent_back"] and Path(ray_entry["output"]).parent == outputs.resolve()
        assert Path(ray_entry["output"]).with_name(Path(ray_entry["output"]).name + ".json").is_file()
        assert ray_entry["seed"] == local_entry["seed"]
        assert ray_entry["request_sha256"] == local_entry["request_sha256"]
        assert np.array_equal(frames_of(ray_entry), frames_of(local_entry)), f"line {ray_entry['line']} differs"
    assert not [path for path in worker_outputs.iterdir() if not path.name.startswith(("history", "."))], \
        "the workers kept copies of videos sent back"

    # The same call again: every line is done
    again = batch_ray.run_ray(batch.read_batch([shots], OPTIONS), batch.Results(ray_results), models_dir=models_dir,
                              outputs_dir=outputs, cpus_per_worker=1, worker_outputs_dir=worker_outputs)
    assert again.skipped == [1, 2, 3, 4, 5, 6] and not again.ran


def test_a_killed_worker_s_line_runs_on_the_other_and_the_batch_completes(models_dir, tmp_path):
    shots = six_lines(tmp_path)
    with shots.open("a") as file:  # and a 7th line whose model is not installed on the workers: only it errors
        file.write(json.dumps({"image": "pics/picture0.png", "model": "only-on-the-driver"}) + "\n")
    results_path = tmp_path / "results.jsonl"
    killed = []

    def kill_a_worker(event):
        if event.kind == "started" and event.line == 3 and not killed:  # both workers have had a line
            names = sorted(name for name in ray.util.list_named_actors() if name.startswith("video-gen-batch-"))
            killed.append(names[0])
            ray.kill(ray.get_actor(names[0]))

    summary = batch_ray.run_ray(batch.read_batch([shots], OPTIONS), batch.Results(results_path), models_dir=models_dir,
                                outputs_dir=tmp_path / "outputs", cpus_per_worker=1, on_event=kill_a_worker)
    assert killed and summary.retries >= 1
    assert summary.ran == [1, 2, 3, 4, 5, 6] and list(summary.errors) == [7] and summary.exit_code == 1
    assert summary.errors[7]["error"].startswith("model:") and "only-on-the-driver" in summary.errors[7]["error"]
    entries = entries_of(results_path)
    assert [(entry["line"], entry["status"]) for entry in entries] == [(line, "success") for line in range(1, 7)] + [
        (7, "error")]
    assert all(Path(entry["output"]).is_dir() and not entry.get("sent_back") for entry in entries[:6])  # shared


def test_interrupted_on_ray_after_two_jobs_the_rerun_runs_only_the_rest(models_dir, tmp_path):
    shots = six_lines(tmp_path)
    results_path = tmp_path / "results.jsonl"

    def interrupt_after_two(event):
        if event.kind == "finished" and event.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch_ray.run_ray(batch.read_batch([shots], OPTIONS), batch.Results(results_path), models_dir=models_dir,
                          outputs_dir=tmp_path / "outputs", cpus_per_worker=1, on_event=interrupt_after_two)
    first = sorted(entry["line"] for entry in entries_of(results_path))
    assert len(first) == 2 and {entry["status"] for entry in entries_of(results_path)} == {"success"}, \
        entries_of(results_path)
    assert not [name for name in ray.util.list_named_actors() if name.startswith("video-gen-batch-")], \
        "the workers were not stopped"

    summary = batch_ray.run_ray(batch.read_batch([shots], OPTIONS), batch.Results(results_path), models_dir=models_dir,
                                outputs_dir=tmp_path / "outputs", cpus_per_worker=1)
    assert summary.skipped == first and sorted(summary.ran) == sorted(set(range(1, 7)) - set(first))
    assert [entry["status"] for entry in entries_of(results_path)] == ["success"] * 6


def test_the_command_line_runs_a_folder_on_ray(models_dir, tmp_path, capsys):
    """`video-gen batch FOLDER --ray ...` (this module's cluster is already joined, so it is used as it is)."""
    from test_batch import FLAGS, pictures

    from video_gen.cli import main

    pictures(tmp_path / "photos", 2)
    code = main(["batch", str(tmp_path / "photos"), "--ray", "auto", "--ray-workers", "1", "--ray-cpus-per-worker", "1",
                 "--models-dir", str(models_dir), "--outputs-dir", str(tmp_path / "outputs"), "--seed", "4", *FLAGS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    entries = entries_of(Path(captured.out.strip()))
    assert [(entry["line"], entry["status"], entry["seed"]) for entry in entries] == [(1, "success", 4),
                                                                                     (2, "success", 4)]
    assert all(Path(entry["output"]).suffix == ".mp4" and entry["worker"] for entry in entries)
    assert "2 lines: 2 made" in captured.err
