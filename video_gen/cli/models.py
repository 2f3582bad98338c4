"""`video-gen models list|download|import|demo`, `video-gen inspect VIDEO` and `video-gen history`: what is
installed, what an output was made with, and the jobs so far."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..annotators import ANNOTATORS
from ..checkpoints import ENHANCER, LORA, MODEL, UPSCALER
from ..console import command
from ..enhance import DOWNLOADS as ENHANCER_DOWNLOADS
from ..errors import InvalidRequest
from ..families import specs
from ..upscale import DOWNLOADS as UPSCALER_DOWNLOADS
from .common import EXIT_OK, Parser, outputs_dir


def add_parsers(commands, common) -> None:
    models = commands.add_parser("models", parents=[common], help="installed models")
    models_commands = models.add_subparsers(dest="models_command", required=True, parser_class=Parser)
    models_commands.add_parser("list", parents=[common],
                               help="list models in the models dir, the Hugging Face cache and --extra-models-dir")
    download = models_commands.add_parser("download", parents=[common], help="download a known model (resumable)")
    download.add_argument("name", help="one of: " + ", ".join(
        [*(download.name for spec in specs() for download in spec.downloads), *(item.name for item in ANNOTATORS)])
                          + "; upscalers: " + ", ".join(download.name for download in UPSCALER_DOWNLOADS)
                          + "; prompt enhancers: " + ", ".join(download.name for download in ENHANCER_DOWNLOADS))
    download.add_argument("--quant", default=None,
                          help="for GGUF downloads (names ending in -gguf): the quantisation, such as Q4_K_M "
                               "(default), Q5_K_M, Q8_0")
    import_parser = models_commands.add_parser("import", parents=[common],
                                               help="check a model folder or file and link it into the models dir")
    import_parser.add_argument("path", help="a diffusers folder, a .safetensors file, or a motion adapter")
    import_parser.add_argument("--name", help="the name to install it under (default: from the path)")
    import_parser.add_argument("--copy", action="store_true", help="copy instead of linking")
    demo = models_commands.add_parser("demo", parents=[common],
                                      help="install a tiny random-weight demo model (makes noise, not video) to try "
                                           "everything without a download")
    demo.add_argument("--lora", action="store_true",
                      help="install the second demo instead: a tiny AnimateDiff and a tiny LoRA that fits it (the "
                           "prompt and the LoRA panel, offline)")

    inspect = commands.add_parser("inspect", parents=[common], help="print the parameters stored in an output")
    inspect.add_argument("video")

    history = commands.add_parser("history", parents=[common], help="list the web app's jobs, newest first")
    history.add_argument("--status", choices=["queued", "running", "done", "failed", "cancelled", "interrupted"],
                         help="only jobs with this status")
    history.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    history.add_argument("--json", action="store_true", help="one JSON object per line")


def models_command(args) -> int:
    from ..checkpoints import default_models_dir

    folder = Path(args.models_dir) if args.models_dir else default_models_dir()
    if args.models_command == "download":
        from ..downloads import DEFAULT_QUANT, download, known_models

        known = known_models().get(args.name)
        if args.quant and known is not None and not any("{quant}" in pattern for pattern in known.files):
            raise InvalidRequest("quant", f"{args.name} comes in one precision only; --quant goes with the -gguf "
                                          f"downloads")
        path = download(args.name, folder, quant=args.quant or DEFAULT_QUANT)
        if known is not None and known.kind == UPSCALER:
            print(f"{known.name}: use it with --upscaler {path.stem} (generate), or "
                  f"`{command(f'upscale VIDEO --upscaler {path.stem}')}`", file=sys.stderr)
        elif known is not None and known.kind == ENHANCER:
            print(f"{known.name}: use it with --enhance-prompt --enhancer {path.name}, or "
                  f"`{command(f'prompt PICTURE --prompt TEXT --enhancer {path.name}')}`", file=sys.stderr)
        elif known is not None and known.files:
            print(f"{known.name}: use it with --model {path.stem} (the {known.folder} folder beside it gives its "
                  f"other parts: text encoder, configs)", file=sys.stderr)
        print(path)
        return EXIT_OK
    if args.models_command == "demo":
        from ..demo import DEMO_NOTE, LORA_DEMO_FILE
        from ..downloads import install_demo, install_lora_demo

        where = f" --models-dir {args.models_dir}" if args.models_dir else ""
        if args.lora:
            path = install_lora_demo(folder)
            lora = LORA_DEMO_FILE.rsplit(".", 1)[0]
            print(f"demo AnimateDiff and LoRA installed ({DEMO_NOTE}): try them with "
                  f"`{command(f'generate --model {path.name} --prompt TEXT --lora {lora}:0.8{where}')}`, or choose "
                  f"the model on the page (press Refresh if the page is open)", file=sys.stderr)
        else:
            path = install_demo(folder)
            print(f"demo model installed ({DEMO_NOTE}): try it with "
                  f"`{command(f'generate PICTURE --model {path.name}{where}')}`, or choose it on the page "
                  f"(press Refresh if the page is open); `{command('models demo --lora' + where)}` adds a tiny "
                  f"AnimateDiff with a LoRA", file=sys.stderr)
        print(path)
        return EXIT_OK
    if args.models_command == "import":
        from ..downloads import import_model

        info = import_model(args.path, folder, name=args.name, copy=args.copy, allow_pickle=args.allow_pickle)
        print(f"imported {info.note} as {info.name!r}: {info.path}", file=sys.stderr)
        print(info.path)
        return EXIT_OK
    return models_list(folder, args.extra_models_dir or ())


LIST_COLUMNS = ("NAME", "FAMILY", "KIND", "PRECISION", "SIZE", "SOURCE", "PATH")


def models_list(folder: Path, extra_dirs) -> int:
    """One line per model found anywhere, tab-separated for scripts: name, family (its module name: svd,
    animatediff, …; "-" when none; for a LoRA, the families of the installed models it fits), kind (model,
    motion-adapter, lora with its style and the installed models it fits, upscaler with its architecture and
    scale, enhancer, or unsupported with the reason),
    precision, size, source (models, hf-cache, or the extra folder), path."""
    from ..catalog import Catalog

    catalog = Catalog(folder, extra_dirs)
    found = catalog.entries()
    annotators = _installed_annotators(folder)
    if not found and not annotators:
        print(f"no model installed in {folder.resolve()}, the Hugging Face cache or the extra folders; "
              f"see models/README.md (`{command('models download svd-xt')}`), or try everything with a tiny demo "
              f"model that makes noise, not video: `{command('models demo')}`", file=sys.stderr)
        return EXIT_OK
    fits = _lora_fits(catalog, found) if any(info.role == LORA for info in found) else {}
    # The header goes to stderr: a person reads both, a script reading stdout gets rows only.
    print("\t".join(LIST_COLUMNS), file=sys.stderr, flush=True)
    for model in found:
        family = model.family or "-"
        kind = model.role + (f" ({model.note})" if model.note else "")
        if model.role == LORA:
            fitting = fits.get(model.name, [])
            family = ",".join(dict.fromkeys(info.family for info in fitting)) or "-"
            kind = (f"lora ({model.note}; fits {', '.join(info.name for info in fitting) or 'no installed model'})"
                    if model.class_name == "LoRA" else f"lora ({model.note})")
        print(f"{model.name}\t{family}\t{kind}\t{model.precision or '-'}\t{_human_size(model.size_bytes)}\t"
              f"{model.source}\t{model.path}")
    for annotator, path in annotators:
        size = sum(file.stat().st_size for file in path.iterdir() if file.is_file())
        print(f"{annotator.name}\t-\tannotator ({annotator.description})\t-\t{_human_size(size)}\tmodels\t{path}")
    return EXIT_OK


def _installed_annotators(folder: Path) -> list:
    """The annotators (for --control-kind depth, pose) whose files are all in models/annotators/NAME."""
    from ..annotators import annotators_dir

    return [(annotator, annotators_dir(folder) / annotator.name) for annotator in ANNOTATORS
            if all((annotators_dir(folder) / annotator.name / file).is_file() for file in annotator.files)]


def _lora_fits(catalog, found) -> dict[str, list]:
    """For each LoRA found, the installed models it fits (each model as it runs: a single file with its folder)."""
    from .. import loras
    from ..errors import VideoGenError
    from ..families import load_family

    runnable = []
    for info in found:
        if info.role == MODEL:
            try:
                runnable.append(catalog.resolve(info.name))
            except VideoGenError:
                continue  # a model that cannot run is said so when it is chosen
    return {lora.name: [model for model in runnable
                        if loras.fits(lora.path, model, load_family(model.family)) is None]
            for lora in found if lora.role == LORA and lora.class_name == "LoRA"}


def _human_size(size: int) -> str:
    return f"{size / 2**30:.2f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"


def inspect_command(args) -> int:
    from .. import video_io

    path = Path(args.video)
    if not path.exists():
        raise InvalidRequest("video", f"not found: {path}")
    metadata = video_io.read_metadata(path)
    if metadata is None:
        raise InvalidRequest("video", f"{path} carries no video-gen parameters")
    print(json.dumps(metadata, indent=2, sort_keys=True))
    return EXIT_OK


def history_command(args) -> int:
    from .. import history as job_history

    database = job_history.history_path(outputs_dir(args))
    if not database.is_file():
        print(f"no jobs yet: {database} does not exist (the web app writes it)", file=sys.stderr)
        return EXIT_OK
    store = job_history.History(database)
    try:
        entries = store.entries(status=args.status, limit=max(1, args.limit))
    finally:
        store.close()
    if not entries:
        only = f" with status {args.status}" if args.status else ""
        print(f"no jobs{only} in {database}", file=sys.stderr)
    for entry in entries:
        request = entry.request
        if args.json:
            print(json.dumps({"id": entry.id, "status": entry.status, "queued_at": entry.queued_at,
                              "started_at": entry.started_at, "finished_at": entry.finished_at,
                              "elapsed_s": entry.elapsed_s, "output": entry.output, "error": entry.error,
                              "rerun_of": entry.rerun_of, "request": request}, sort_keys=True))
            continue
        where = entry.output if entry.status == job_history.DONE else (entry.error or "")
        print(f"{entry.id}\t{entry.queued_at.replace('T', ' ')[:19]}\t{entry.status}\t{request.get('model') or '-'}\t"
              f"seed {request.get('seed')}\t{request.get('num_frames')} frames\t"
              f"{request.get('width')}x{request.get('height')}\t{where}")
    return EXIT_OK
