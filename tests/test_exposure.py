"""What the server exposes: only the outputs folder, never the models, the history database or anything
outside, whichever of Gradio's file routes is asked and however the path is spelled; no monitoring page,
no analytics; loopback unless a password is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import TINY_MODEL
from test_app import ROOT, free_port, start_server

FILE_ROUTES = ["gradio_api/file={path}", "gradio_api/file/{path}", "file={path}", "file/{path}",
               "gradio_api/proxy={path}", "static/{path}", "assets/{path}", "svelte/{path}"]


@pytest.fixture(scope="module")
def exposed(models_dir, tmp_path_factory, photo):
    """A server with one finished job, a symlink out of outputs and a secret beside the outputs folder."""
    from gradio_client import Client, handle_file
    from test_app import WEB_FAST

    root = tmp_path_factory.mktemp("exposure")
    secret = root / "secret.txt"
    secret.write_text("not for the network")
    demo, running = start_server(models_dir, root, tmp_path_factory.mktemp("temp"))
    client = Client(running.url, verbose=False, download_files=str(root / "downloads"))
    _, info, *_ = client.predict(image=handle_file(str(photo)), **WEB_FAST, api_name="/generate")
    (running.outputs / "link-to-secret.txt").symlink_to(secret)
    (running.outputs / "link-to-models").symlink_to(models_dir, target_is_directory=True)
    yield running, Path(info["output"]), secret
    demo.close()


def _variants(path: Path, outputs: Path) -> list[str]:
    """Ways to spell a path that is not in the outputs: plain, through `..` from outputs, percent-encoded."""
    relative = os.path.relpath(path, outputs)
    through = f"{outputs}/{relative}"
    return [str(path), through, quote(through, safe=""), through.replace("..", "%2e%2e"),
            through.replace("/", "%2f"), through.replace("..", "%252e%252e")]


def test_only_outputs_are_served_through_every_file_route(exposed, models_dir):
    server, output, secret = exposed
    outputs = server.outputs
    database = outputs / "history.sqlite3"
    assert database.is_file() and (outputs / "history.sqlite3-wal").exists()
    partial = outputs / ".partial" / ".half.mp4.partial-0"
    partial.write_bytes(b"half-written")
    forbidden = [
        models_dir / TINY_MODEL / "model_index.json",  # the models folder
        database, Path(f"{database}-wal"),  # the history database, and its WAL beside it
        partial,  # work files
        secret, Path("/etc/passwd"), ROOT / "app.py",  # outside the outputs
        outputs / "link-to-secret.txt",  # symlinks out of the outputs
        outputs / "link-to-models" / TINY_MODEL / "model_index.json",
    ]
    tried, leaks = 0, []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get(f"gradio_api/file={output}").content == output.read_bytes()  # the one thing served
        for path in forbidden:
            secret_bytes = path.resolve().read_bytes() if path.exists() else None
            spellings = _variants(path, outputs)
            if not str(path).startswith(str(outputs)):
                spellings.append(f"{outputs}/../{path.relative_to('/')}" if path.is_absolute() else str(path))
            for route in FILE_ROUTES:
                for spelling in spellings:
                    tried += 1
                    response = http.get(route.format(path=spelling))
                    if response.status_code == 200 and secret_bytes is not None and (
                            secret_bytes[:64] in response.content):
                        leaks.append(f"{route.format(path=spelling)} -> {response.status_code}")
                    elif response.status_code == 200 and route.startswith(("gradio_api/file", "file")):
                        leaks.append(f"{route.format(path=spelling)} answered 200")
    assert not leaks, "\n".join(leaks)
    assert tried >= 300
    print(f"exposure: {tried} requests for forbidden paths, all refused")


def test_no_monitoring_no_run_history_no_analytics_no_share(exposed):
    server, _, _ = exposed
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for route in ("monitoring", "gradio_api/monitoring", "monitoring/", "gradio_api/runs", "runs",
                      "gradio_api/run-history/buckets"):
            assert http.get(route, follow_redirects=True).status_code in (403, 404), route
        page = http.get("").text
    assert "googletagmanager" not in page and "google-analytics" not in page
    assert server.demo.analytics_enabled is False and server.demo.share is False
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
    assert server.demo.server_name == "127.0.0.1"  # loopback by default
    assert server.demo.max_file_size == 50 * 2**20


def test_other_addresses_need_auth(models_dir):
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--host", host, "--port", str(free_port()),
                               "--models-dir", str(models_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 1 and f"refusing to listen on {host} without --auth" in done.stderr
