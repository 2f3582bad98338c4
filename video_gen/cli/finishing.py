"""`video-gen upscale VIDEO --upscaler NAME` and `video-gen prompt PICTURE --prompt TEXT`: the finishing tools
on their own (finishing.py); `generate --upscaler NAME` and `generate --enhance-prompt` are request fields."""

from __future__ import annotations

import sys

from ..request import FIELD, FORMATS
from .common import EXIT_OK, generator, progress_bar


def add_parsers(commands, common) -> None:
    upscale = commands.add_parser("upscale", parents=[common],
                                  help="upscale every frame of a video with an upscaler (models/upscalers); "
                                       "keeps its frame count, frame rate and sound; prints the written path")
    upscale.add_argument("video", help="the video: MP4, WebM, MOV, GIF, or a folder of PNG frames")
    upscale.add_argument("--upscaler", required=True, metavar="NAME",
                         help="an installed upscaler (`video-gen models list` shows each with its scale) or a path")
    upscale.add_argument("--format", choices=FORMATS, help=FIELD["output_format"].help)
    upscale.add_argument("--output", metavar="PATH", help="file (or folder for png) to write; overwritten if it "
                                                          "exists (default: outputs/<name>_x<scale>.mp4)")
    upscale.add_argument("--crf", type=int, default=18, help="quality for mp4/webm: lower is better and bigger "
                                                             "(default 18, visually lossless)")
    upscale.add_argument("--quiet", action="store_true", help="no progress bar")

    prompt = commands.add_parser("prompt", parents=[common],
                                 help="rewrite a prompt from the picture with the prompt enhancer (models/enhancers); "
                                      "prints only the enhanced prompt")
    prompt.add_argument("image", help="the picture the video will start from")
    prompt.add_argument("--prompt", default="", help="your prompt (empty: the enhancer writes one for the picture)")
    prompt.add_argument("--enhancer", metavar="NAME", help="an installed enhancer or a path (default: the only one)")
    prompt.add_argument("--model", metavar="NAME", help="the video model it is for: its family's style (Wan and "
                                                        "LTX long descriptions, AnimateDiff tags, …)")
    prompt.add_argument("--style", choices=("long", "motion", "caption", "tags"),
                        help="the style without a model (default: long)")


def upscale_command(args) -> int:
    from ..finishing import upscale_video

    progress = progress_bar(args)
    try:
        result = upscale_video(generator(args), args.video, args.upscaler, output_path=args.output,
                               output_format=args.format, crf=args.crf, on_event=progress)
    finally:
        if progress:
            progress.close()
    print(f"{result.frames} frames at {result.fps:g} fps, {result.width}x{result.height}, "
          f"{result.elapsed_s:.1f} s", file=sys.stderr)
    print(result.path)
    return EXIT_OK


def prompt_command(args) -> int:
    from ..finishing import enhance_prompt

    result = enhance_prompt(generator(args), args.image, args.prompt, enhancer=args.enhancer, model=args.model,
                            style=args.style)
    print(result.text)
    return EXIT_OK
