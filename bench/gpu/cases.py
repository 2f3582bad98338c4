"""What `bench/gpu/run.sh next` measures, most valuable first, what each case costs, and which to run next.

A lent GPU comes with 15 minutes of device time per session (a machine's start takes 1-2 of them) and one
command may run 10: `next` is one call of at most 9 minutes that runs the most valuable cases not yet measured
on this card (read from bench/results/*.json), so a second session continues where the first stopped. This
module is only data and arithmetic (no torch): the selection runs anywhere, `run.sh next --list` prints it, and
bench/report.py reads the case list to write the README's table.

Case ids are stable strings, "<model>/<case>": a results file names its cases by them, so changing what an id
measures (its frames, size, steps) needs a new id, or old rows would pass for new ones.

A newer family adds its cases (tier 6, after everything below) and its models to `MODELS` and `CASES` here,
the builder in bench/gpu/build.py, and nothing else: `next` picks them up in the next lent session.

The costs are estimates for an H100 (seconds of the call, the model's load and warm-up included; building a
model is its own cost, paid once per call by the first case that needs it), from the FLOPs of each job (in the
comments) and the seed's ~1 minute to build SVD-XT. Each row records `case_wall_s` beside its `estimate_s`,
and `builds` the seconds each build took: correct the numbers here from the first GPU run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# One `next` call: its run time is at most 9 minutes (the device's limit is 10 a command, and the JSON must be
# written and returned before it), of which the wheels' install and the imports take ~1 minute.
CALL_BUDGET_S = 540
SETUP_S = 35  # of which installing the wheels, importing torch and diffusers and starting CUDA (estimate)
TINY_CASE_S = 3.0  # a case at tiny size on a CPU (measured: 0.2-1 s a job on 2 busy cores, plus its warm-up)
TINY_BUILD_S = 2.0  # building a tiny model (measured: tiny SVD 3 s with the first imports, the others < 0.1 s)
CAP_GIB = 12.0  # the 12 GB reference user: capped cases hold the process to this much device memory
WITHIN_CAP_GIB = 11.5  # the issues' bar for a capped peak (reserved)


@dataclass(frozen=True)
class Model:
    """A random-weight model at full size (the real architecture: the real FLOPs and bytes) and its tiny twin."""

    key: str
    folder: str  # under the runner's models folder, full size
    tiny_folder: str
    title: str
    # Building it on the GPU machine and writing it to disk, plus the SHA-256 the app takes of every weight file on
    # a model's first load (video_gen's weights_sha256, cached per machine; ~1.5 GB/s: 30 s for Wan 14B's 41 GB),
    # which the first case of the model in a call pays (estimates)
    build_s: float
    disk_gib: float  # what it takes on that machine's 64 GiB disk
    needs: tuple[str, ...] = ()  # models it is built from (the LTX upsampler takes the 2B's VAE)


@dataclass(frozen=True)
class Case:
    id: str
    tier: int  # the priority group (1 first)
    model: str  # the key in MODELS of the model it runs
    title: str  # what it measures, as the README's table says it
    cost_s: float  # estimated seconds on an H100, the model's load included, its build not
    kind: str  # "svd" (bench/gpu_svd.py's Bench, with a warm-up job), "job" (one engine job, timed) or
    # "upscale" (`video-gen upscale` of a video: finishing.upscale_video, timed)
    params: dict = field(default_factory=dict)
    after: tuple[str, ...] = ()  # cases that must run earlier in the same call (a baseline measured beside it)
    compare_to: str | None = None  # the README shows this case's speed against that one's, same card
    compare_field: str = "seconds"  # "seconds" (end to end) or "s_per_step"
    extra_models: tuple[str, ...] = ()  # models it needs beside its own (the LTX upsampler)
    tiny_cost_s: float = TINY_CASE_S

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model, *self.extra_models)


MODELS = {model.key: model for model in (
    # UNet 1.5 B + VAE 0.1 B + CLIP ViT-H 0.6 B in fp16: 4.2 GB written
    Model("svd-xt", "svd-xt-random", "tiny-svd", "SVD-XT (random fp16 weights)", build_s=65, disk_gib=4.2),
    # transformer 14 B + umT5-XXL 5.7 B in bf16, CLIP ViT-H in fp32, the rank-64 LoRA: 41 GB written
    Model("wan2.1-i2v-14b", "random-wan-i2v-14b-480p", "tiny-wan-i2v-14b-480p",
          "Wan 2.1 I2V 14B 480P (random bf16) + a lightx2v-layout step-distill LoRA", build_s=210, disk_gib=39),
    # transformer 5 B in bf16; umT5-XXL (11 GB) is linked from the 14B when that was built first
    Model("wan2.2-ti2v-5b", "random-wan-ti2v-5b", "tiny-wan-ti2v-5b", "Wan 2.2 TI2V-5B (random bf16)",
          build_s=110, disk_gib=21),
    # transformer 2 B + T5-XXL 4.7 B + VAE in bf16: 14 GB written
    Model("ltx-2b-distilled", "ltx-2b-distilled-random", "tiny-ltx-2b-distilled",
          "LTX-Video 2B distilled (random bf16)", build_s=100, disk_gib=14),
    Model("ltx-upsampler", "ltx-upscaler-random", "tiny-ltx-upscaler", "LTX-Video latent upsampler (random)",
          build_s=15, disk_gib=1.5, needs=("ltx-2b-distilled",)),
    # transformer 13 B + T5-XXL 4.7 B in bf16: 36 GB written
    Model("ltx-13b-distilled", "ltx-13b-distilled-random", "tiny-ltx-13b-distilled",
          "LTX-Video 13B distilled (random bf16)", build_s=185, disk_gib=34),
    # transformer 8.3 B + Qwen2.5-VL 7B text + VAE 1.26 B + ByT5 + SigLIP in bf16: 35 GB written
    Model("hunyuan15-480p-i2v", "random-hunyuan15-480p-i2v", "tiny-hunyuan15-480p-i2v",
          "HunyuanVideo 1.5 480p I2V (random bf16)", build_s=190, disk_gib=34),
    # transformer 12.9 B + Llama-3 8B + CLIP-L + VAE + SigLIP in bf16, one saved pipeline ("F1" in its name): 42 GB
    Model("framepack-f1", "random-framepack-f1", "tiny-framepack-f1", "FramePack-F1 (random bf16)", build_s=230,
          disk_gib=41),
    # Wan 2.1 VACE (issue 26): transformer 1.3 B + 15 VACE blocks (~2.0 B in all: 4 GB) + umT5-XXL (11 GB, linked
    # from another random Wan when one was built first); the 14B: 14 B + 8 VACE blocks (~17 B: 34 GB) + umT5-XXL
    Model("wan2.1-vace-1.3b", "random-wan-vace-1.3b", "tiny-wan-vace-1.3b", "Wan 2.1 VACE 1.3B (random bf16)",
          build_s=80, disk_gib=16),
    Model("wan2.1-vace-14b", "random-wan-vace-14b", "tiny-wan-vace-14b", "Wan 2.1 VACE 14B (random bf16)",
          build_s=240, disk_gib=46),
    # LTX-2.0 19B transformer + Gemma 3 12B + connectors, VAEs, vocoder, latent upsampler, initialised on the GPU
    # and stored in fp8 on disk (loaded as bf16: the bf16 files, 66 GiB, do not fit the 64 GiB disk): ~36 GiB
    # written, then the app's SHA-256 of them (~25 s) on the first load
    Model("ltx2-19b", "ltx2-19b-random", "tiny-ltx2-19b", "LTX-2 19B dev with sound (random weights)",
          build_s=170, disk_gib=36),
    # the same weights under a distilled name (links to ltx2-19b's parts): the app's distilled defaults
    Model("ltx2-19b-distilled", "ltx2-19b-distilled-random", "tiny-ltx2-19b-distilled",
          "LTX-2 19B distilled with sound (random weights, ltx2-19b's linked)", build_s=30, disk_gib=0.1,
          needs=("ltx2-19b",)),
    # Real-ESRGAN x4plus's architecture (RRDBNet, 64 features, 23 blocks, 16.7 M parameters) in the app's
    # models/upscalers folder: one 67 MB file (the tiny one: 8 features, 1 block)
    Model("realesrgan-x4", "upscalers", "upscalers", "Real-ESRGAN x4plus architecture (random fp32 weights)",
          build_s=10, disk_gib=0.1),
)}

# The jobs (frames, width, height) and what runs them
SVD_JOB = "25 frames 1024×576, 25 steps"
WAN_14B = dict(size=(81, 832, 480), tiny_size=(9, 64, 64), prompt="a cat walks on the beach",
               loras=[{"name": "Wan21_I2V_14B_lightx2v_cfg_step_distill_lora_rank64"}])  # 4 steps, guidance 1
WAN_14B_JOB = "81 frames 832×480, 4-step distill LoRA (lightx2v layout, rank 64) at guidance 1"
WAN_5B = dict(size=(121, 1280, 704), tiny_size=(9, 64, 64), prompt="a cat walks on the beach", steps=4)
WAN_5B_JOB = "121 frames 1280×704, 4 steps"
WAN_HOOKS = dict(WAN_5B, steps=10)  # cache hooks skip steps: 4 would leave them nothing to skip
LTX = dict(size=(161, 768, 512), tiny_size=(17, 64, 64), prompt="a lighthouse on a cliff, waves")
LTX_JOB = "161 frames 768×512, 8 steps (distilled)"
# HunyuanVideo 1.5: 31 latent frames x 30 x 53 = 49,290 tokens + 1985 text and image ones, two transformer calls a
# step (guidance 6): ~4 PFLOP a step, ~10 s on an H100; 4 steps keep a call inside a session
HY15 = dict(size=(121, 848, 480), tiny_size=(9, 64, 64), prompt="a cat walks on the beach", steps=4)
HY15_JOB = "121 frames 848×480, 4 steps with guidance 6 (two transformer calls a step)"
# FramePack-F1 at 640x640: 18,400 tokens a section (~0.6 PFLOP a step, one call); 5 s = 149 frames at 30 fps
# (5 sections), 30 s = 901 frames (25 sections); few steps a section keep the 30 s cases inside a session
FRAMEPACK_5S = dict(size=(149, 640, 640), tiny_size=(45, 64, 64), prompt="a cat walks on the beach", steps=6)
FRAMEPACK_30S = dict(size=(901, 640, 640), tiny_size=(73, 64, 64), prompt="a cat walks on the beach", steps=3)
SMALL_CAP_GIB = 8.0  # the 8 GB card FramePack is known for
# VACE: a control video (a synthetic 81-frame clip at 16 fps, `control`) and a reference picture (the photo): 22
# latent frames of 30 × 52 tokens = 34,320 a call, two calls a step (guidance 5); 4 steps, as the other Wan rows
VACE = dict(size=(81, 832, 480), tiny_size=(9, 64, 64), prompt="a dancer on a stage", steps=4, control=True)
VACE_JOB = "81 frames 832×480, a control video and a reference picture, 4 steps at guidance 5"
LTX2 = dict(size=(121, 768, 512), tiny_size=(9, 64, 64), prompt="a woman sings on a rooftop at dusk, city noise")
LTX2_FULL = dict(LTX2, steps=4)  # s/step is what is measured: 4 of its 30 steps, each the CFG pair + modality pass
LTX2_DISTILLED_JOB = "121 frames 768×512 with sound, 8 steps at guidance 1 (distilled)"
LTX2_FULL_JOB = "121 frames 768×512 with sound, 4 of its 30 steps at guidance 3 (CFG + modality passes)"
UPSCALE = dict(size=(25, 1024, 576), tiny_size=(25, 64, 36), upscaler="realesrgan-x4-random")

CASES = [
    # ---- 1. SVD-XT: the headline, and the seed's recipe against ours under a 12 GiB cap --------------------------
    # UNet ~2 TFLOP per frame-pass at 72×128 latents × 50 (25 frames, CFG) × 25 steps ≈ 2.5 PFLOP: ~10 s at
    # 250 TFLOP/s, plus the load (4.2 GB), a 2-step warm-up, the decode and the MP4
    Case("svd-xt/default", 1, "svd-xt", f"SVD-XT {SVD_JOB}: our default plan, uncapped (the headline)", 45, "svd",
         dict(case="default"), compare_to="svd-xt/seed"),
    Case("svd-xt/seed-capped", 1, "svd-xt",
         f"SVD-XT {SVD_JOB}: the seed's recipe (fp16 + model offload, decode 4) under {CAP_GIB:g} GiB", 60, "svd",
         dict(case="seed-capped")),
    Case("svd-xt/capped", 1, "svd-xt", f"SVD-XT {SVD_JOB}: our plan under the same {CAP_GIB:g} GiB", 60, "svd",
         dict(case="capped"), compare_to="svd-xt/seed-capped"),
    # ---- 2. Wan 2.1 I2V 14B with a 4-step distill LoRA; Wan 2.2 TI2V-5B under 12 GiB -----------------------------
    # 21 latent frames × 30 × 52 tokens = 32,760; ~1.8 PFLOP a step (guidance 1: one pass): ~5 s, 4 steps, plus
    # loading 41 GB (from the page cache after the build), the VAE decode of 81 frames and the MP4
    Case("wan2.1-i2v-14b/lightx2v", 2, "wan2.1-i2v-14b", f"Wan 2.1 I2V 14B 480P {WAN_14B_JOB}: uncapped, bf16", 75,
         "job", dict(WAN_14B)),
    Case("wan2.1-i2v-14b/lightx2v-capped", 2, "wan2.1-i2v-14b",
         f"Wan 2.1 I2V 14B 480P {WAN_14B_JOB}: under {CAP_GIB:g} GiB, bf16", 100, "job", dict(WAN_14B, capped=True),
         compare_to="wan2.1-i2v-14b/lightx2v", compare_field="s_per_step"),
    Case("wan2.1-i2v-14b/lightx2v-fp8", 2, "wan2.1-i2v-14b",
         f"Wan 2.1 I2V 14B 480P {WAN_14B_JOB}: uncapped, fp8 storage", 80, "job",
         dict(WAN_14B, memory_plan="auto+fp8"), compare_to="wan2.1-i2v-14b/lightx2v", compare_field="s_per_step"),
    Case("wan2.1-i2v-14b/lightx2v-fp8-capped", 2, "wan2.1-i2v-14b",
         f"Wan 2.1 I2V 14B 480P {WAN_14B_JOB}: under {CAP_GIB:g} GiB, fp8 storage", 100, "job",
         dict(WAN_14B, memory_plan="auto+fp8", capped=True), compare_to="wan2.1-i2v-14b/lightx2v-capped",
         compare_field="s_per_step"),
    # 31 latent frames × 22 × 40 tokens = 27,280; ~1.1 PFLOP a step with CFG; the 48-channel VAE's decode of 121
    # frames at 1280×704 in tiles dominates under the cap
    Case("wan2.2-ti2v-5b/capped", 2, "wan2.2-ti2v-5b", f"Wan 2.2 TI2V-5B {WAN_5B_JOB}: under {CAP_GIB:g} GiB", 150,
         "job", dict(WAN_5B, capped=True)),
    # ---- 3. LTX-Video 2B distilled -------------------------------------------------------------------------------
    # 21 latent frames × 16 × 24 tokens = 8,064: the 8 steps take seconds; the load (14 GB), T5 and the decode most
    Case("ltx-2b-distilled/uncapped", 3, "ltx-2b-distilled", f"LTX-Video 2B distilled {LTX_JOB}: uncapped", 45, "job",
         dict(LTX)),
    Case("ltx-2b-distilled/capped", 3, "ltx-2b-distilled", f"LTX-Video 2B distilled {LTX_JOB}: under {CAP_GIB:g} GiB",
         60, "job", dict(LTX, capped=True), compare_to="ltx-2b-distilled/uncapped"),
    # ---- 4. Each cache hook on Wan against none, in the same call --------------------------------------------------
    # Random weights: a hook's cost and its skip decisions are measured, but how much a real model lets it skip
    # is not (that depends on the trained weights); 10 steps with CFG at ~2.5 s a step, plus the decode
    Case("wan2.2-ti2v-5b/no-cache", 4, "wan2.2-ti2v-5b",
         "Wan 2.2 TI2V-5B 121 frames 1280×704, 10 steps, uncapped: no cache hook (the hooks' baseline)", 90, "job",
         dict(WAN_HOOKS)),
    *(Case(f"wan2.2-ti2v-5b/{speed}", 4, "wan2.2-ti2v-5b",
           f"Wan 2.2 TI2V-5B 121 frames 1280×704, 10 steps, uncapped: {name}", 75, "job", dict(WAN_HOOKS, speed=speed),
           after=("wan2.2-ti2v-5b/no-cache",), compare_to="wan2.2-ti2v-5b/no-cache", compare_field="s_per_step")
      for speed, name in (("first-block-cache", "FirstBlockCache"), ("magcache", "MagCache"),
                          ("taylorseer", "TaylorSeer"))),
    # ---- 5. Compile and group offload, then the rest of the old part 2 and the LTX/Wan extras --------------------
    Case("svd-xt/plan:group", 5, "svd-xt", f"SVD-XT {SVD_JOB}: group offload forced", 75, "svd",
         dict(case="plan:group"), compare_to="svd-xt/default"),
    # inductor compiles the UNet in ~1-3 minutes on the machine's 16 cores; its first and second runs are rows apart
    Case("svd-xt/compile", 5, "svd-xt", f"SVD-XT {SVD_JOB}: our default + torch.compile of the UNet", 240, "svd",
         dict(case="compile"), compare_to="svd-xt/default", tiny_cost_s=30),
    Case("svd-xt/seed", 5, "svd-xt", f"SVD-XT {SVD_JOB}: the seed's recipe, uncapped", 60, "svd", dict(case="seed")),
    Case("svd-xt/plan:none", 5, "svd-xt", f"SVD-XT {SVD_JOB}: everything on the GPU forced", 45, "svd",
         dict(case="plan:none"), compare_to="svd-xt/default"),
    Case("svd-xt/plan:model", 5, "svd-xt", f"SVD-XT {SVD_JOB}: model offload forced", 55, "svd",
         dict(case="plan:model"), compare_to="svd-xt/default"),
    Case("svd-xt/channels-last", 5, "svd-xt", f"SVD-XT {SVD_JOB}: our default + channels-last convolutions", 50,
         "svd", dict(case="channels-last"), compare_to="svd-xt/default"),
    # sequential offload streams every weight for each of the 25 × 2 UNet calls
    Case("svd-xt/plan:sequential", 5, "svd-xt", f"SVD-XT {SVD_JOB}: sequential offload forced", 200, "svd",
         dict(case="plan:sequential"), compare_to="svd-xt/default"),
    Case("wan2.2-ti2v-5b/uncapped", 5, "wan2.2-ti2v-5b", f"Wan 2.2 TI2V-5B {WAN_5B_JOB}: uncapped", 90, "job",
         dict(WAN_5B)),
    Case("ltx-2b-distilled/two-stage", 5, "ltx-2b-distilled",
         f"LTX-Video 2B distilled {LTX_JOB}: two stages (half size, latent upsampler 2x, refine)", 70, "job",
         dict(LTX, upscale="2x"), extra_models=("ltx-upsampler",)),
    Case("ltx-2b-distilled/two-stage-capped", 5, "ltx-2b-distilled",
         f"LTX-Video 2B distilled {LTX_JOB}: two stages under {CAP_GIB:g} GiB", 90, "job",
         dict(LTX, upscale="2x", capped=True), extra_models=("ltx-upsampler",)),
    Case("ltx-13b-distilled/uncapped", 5, "ltx-13b-distilled", f"LTX-Video 13B distilled {LTX_JOB}: uncapped", 60,
         "job", dict(LTX)),
    Case("ltx-13b-distilled/capped", 5, "ltx-13b-distilled",
         f"LTX-Video 13B distilled {LTX_JOB}: under {CAP_GIB:g} GiB", 100, "job", dict(LTX, capped=True),
         compare_to="ltx-13b-distilled/uncapped"),
    # ---- 6. Newer families: each adds its cases here as its issue adds the family ------------------------------
    # Wan VACE 1.3B: ~0.36 PFLOP a call (2 x 2 B x 34,320 tokens + attention), 8 calls: ~10 s; the load (umT5-XXL
    # 11 GB), encoding the control (the VAE over 81 frames), the decode and two MP4s most of it
    Case("wan2.1-vace-1.3b/uncapped", 6, "wan2.1-vace-1.3b", f"Wan 2.1 VACE 1.3B {VACE_JOB}: uncapped", 60, "job",
         dict(VACE)),
    Case("wan2.1-vace-1.3b/capped", 6, "wan2.1-vace-1.3b", f"Wan 2.1 VACE 1.3B {VACE_JOB}: under {CAP_GIB:g} GiB",
         75, "job", dict(VACE, capped=True), compare_to="wan2.1-vace-1.3b/uncapped", compare_field="s_per_step"),
    # Wan VACE 14B: ~2.1 PFLOP a call, 8 calls: ~50 s, plus loading 45 GB; under the cap its 34 GB transformer is
    # group-offloaded (streamed once a call)
    Case("wan2.1-vace-14b/uncapped", 6, "wan2.1-vace-14b", f"Wan 2.1 VACE 14B {VACE_JOB}: uncapped", 130, "job",
         dict(VACE)),
    Case("wan2.1-vace-14b/capped", 6, "wan2.1-vace-14b", f"Wan 2.1 VACE 14B {VACE_JOB}: under {CAP_GIB:g} GiB",
         170, "job", dict(VACE, capped=True), compare_to="wan2.1-vace-14b/uncapped", compare_field="s_per_step"),
    # LTX-2 (issue 24): 16 x 16 x 24 = 6,144 video tokens (x2 with CFG) and 126 audio tokens; ~0.25 PFLOP a
    # batch-1 pass of the 19B transformer (~1 s on an H100), plus the 35 GB load, Gemma 3 12B on 1024 tokens and
    # the decode of 121 frames. Under a cap the transformer is offloaded block by block (PCIe-bound).
    Case("ltx2-19b-distilled/uncapped", 6, "ltx2-19b-distilled", f"LTX-2 19B distilled {LTX2_DISTILLED_JOB}: uncapped",
         100, "job", dict(LTX2)),
    Case("ltx2-19b-distilled/capped-16", 6, "ltx2-19b-distilled",
         f"LTX-2 19B distilled {LTX2_DISTILLED_JOB}: under 16 GiB", 160, "job", dict(LTX2, capped=True, cap_gib=16.0),
         compare_to="ltx2-19b-distilled/uncapped", compare_field="s_per_step"),
    Case("ltx2-19b-distilled/capped-12", 6, "ltx2-19b-distilled",
         f"LTX-2 19B distilled {LTX2_DISTILLED_JOB}: under {CAP_GIB:g} GiB", 180, "job", dict(LTX2, capped=True),
         compare_to="ltx2-19b-distilled/uncapped", compare_field="s_per_step"),
    Case("ltx2-19b/uncapped", 6, "ltx2-19b", f"LTX-2 19B {LTX2_FULL_JOB}: uncapped", 110, "job", dict(LTX2_FULL)),
    Case("ltx2-19b/capped-16", 6, "ltx2-19b", f"LTX-2 19B {LTX2_FULL_JOB}: under 16 GiB", 200, "job",
         dict(LTX2_FULL, capped=True, cap_gib=16.0), compare_to="ltx2-19b/uncapped", compare_field="s_per_step"),
    Case("ltx2-19b/capped-12", 6, "ltx2-19b", f"LTX-2 19B {LTX2_FULL_JOB}: under {CAP_GIB:g} GiB", 220, "job",
         dict(LTX2_FULL, capped=True), compare_to="ltx2-19b/uncapped", compare_field="s_per_step"),
    # Finishing (issue 27): 25 frames of 1024×576 through Real-ESRGAN x4 to 4096×2304, decoded, tiled as the free
    # memory allows and encoded to H.264: ~37 MFLOP per input pixel x 590 k pixels x 25 frames ≈ 0.55 PFLOP in
    # fp16 (seconds), plus the 4K encode on the CPU (estimate: 10-20 s) and a probe of the bytes per pixel
    Case("realesrgan-x4/upscale-25x1024x576", 6, "realesrgan-x4",
         "Real-ESRGAN x4 (random weights): `video-gen upscale` of 25 frames 1024×576 to 4096×2304", 60, "upscale",
         dict(UPSCALE)),
    # HunyuanVideo 1.5 (issue 25): its attention without dense masks, Qwen 7B never beside the transformer
    Case("hunyuan15-480p-i2v/uncapped", 6, "hunyuan15-480p-i2v", f"HunyuanVideo 1.5 480p I2V {HY15_JOB}: uncapped",
         150, "job", dict(HY15)),
    Case("hunyuan15-480p-i2v/capped", 6, "hunyuan15-480p-i2v",
         f"HunyuanVideo 1.5 480p I2V {HY15_JOB}: under {CAP_GIB:g} GiB", 250, "job", dict(HY15, capped=True),
         compare_to="hunyuan15-480p-i2v/uncapped", compare_field="s_per_step"),
    Case("hunyuan15-480p-i2v/capped-8", 6, "hunyuan15-480p-i2v",
         f"HunyuanVideo 1.5 480p I2V {HY15_JOB}: under {SMALL_CAP_GIB:g} GiB", 280, "job",
         dict(HY15, capped=True, cap_gib=SMALL_CAP_GIB)),
    # FramePack-F1 (issue 25): one job of its own sections whatever the length; the device's peak one section's
    Case("framepack-f1/5s", 6, "framepack-f1", "FramePack-F1 5 s (149 frames, 5 sections) 640×640, 6 steps a "
         "section: uncapped", 90, "job", dict(FRAMEPACK_5S)),
    Case("framepack-f1/5s-capped", 6, "framepack-f1", f"FramePack-F1 5 s 640×640, 6 steps a section: under "
         f"{CAP_GIB:g} GiB", 150, "job", dict(FRAMEPACK_5S, capped=True), compare_to="framepack-f1/5s",
         compare_field="s_per_step"),
    Case("framepack-f1/5s-capped-8", 6, "framepack-f1", f"FramePack-F1 5 s 640×640, 6 steps a section: under "
         f"{SMALL_CAP_GIB:g} GiB", 160, "job", dict(FRAMEPACK_5S, capped=True, cap_gib=SMALL_CAP_GIB)),
    Case("framepack-f1/30s", 6, "framepack-f1", "FramePack-F1 30 s (901 frames, 25 sections) 640×640, 3 steps a "
         "section: uncapped", 200, "job", dict(FRAMEPACK_30S)),
    Case("framepack-f1/30s-capped", 6, "framepack-f1", f"FramePack-F1 30 s 640×640, 3 steps a section: under "
         f"{CAP_GIB:g} GiB", 290, "job", dict(FRAMEPACK_30S, capped=True)),
    Case("framepack-f1/30s-capped-8", 6, "framepack-f1", f"FramePack-F1 30 s 640×640, 3 steps a section: under "
         f"{SMALL_CAP_GIB:g} GiB", 290, "job", dict(FRAMEPACK_30S, capped=True, cap_gib=SMALL_CAP_GIB)),
]
BY_ID = {case.id: case for case in CASES}


# ---- which cases a results file holds -------------------------------------------------------------------------
def is_result(row: dict) -> bool:
    """A row that answers its case: a measurement, or out of memory (what the card could not do is a result).
    Other errors (a crash, a timeout, not finished) leave the case to be tried again."""
    error = row.get("error")
    return not error or bool(row.get("out_of_memory")) or error.startswith("OutOfMemoryError")


def measured(results: list[dict], card: str, tiny: bool) -> tuple[set[str], set[str]]:
    """(cases answered on `card`, cases tried there that failed otherwise) across results files of the runner."""
    done: set[str] = set()
    failed: set[str] = set()
    for result in results:
        if result.get("card_slug") != card or bool(result.get("tiny")) != tiny:
            continue
        for row in result.get("rows", []):
            (done if is_result(row) else failed).add(row.get("case"))
    return done, failed - done


# ---- the selection ---------------------------------------------------------------------------------------------
def build_cost(key: str, tiny: bool) -> float:
    return TINY_BUILD_S if tiny else MODELS[key].build_s


def models_to_build(case: Case, have: set[str]) -> list[str]:
    """The models `case` needs that are not in `have`, each after the models it is built from."""
    order: list[str] = []

    def visit(key: str) -> None:
        for needed in MODELS[key].needs:
            visit(needed)
        if key not in have and key not in order:
            order.append(key)

    for key in case.models:
        visit(key)
    return order


def case_cost(case: Case, tiny: bool) -> float:
    return case.tiny_cost_s if tiny else case.cost_s


def plan(cases: list[Case], done: set[str], budget_s: float, *, failed: set[str] = frozenset(),
         tried: set[str] = frozenset(), built: set[str] = frozenset(), ran: set[str] = frozenset(),
         unavailable: dict[str, str] | None = None, tiny: bool = False) -> list[Case]:
    """The cases to run in `budget_s`, in order: never-answered cases in priority order, then those that failed
    in an earlier call; a case that does not fit what is left (its cost, its models' builds and any same-call
    baseline it needs) is passed over for cheaper ones after it, which the next call reaches first.

    `done`/`failed`: answered / failed in earlier calls on this card; `tried`: already run in this call (not run
    twice); `built`: models on disk now; `ran`: cases run in this call (baselines that need no re-run);
    `unavailable`: cases the app cannot run yet (id -> why), skipped."""
    unavailable = unavailable or {}
    skip = set(done) | set(tried) | set(unavailable)
    fresh = [case for case in cases if case.id not in skip and case.id not in failed]
    retries = [case for case in cases if case.id not in skip and case.id in failed]
    chosen: list[Case] = []
    have, ran_now, left = set(built), set(ran), budget_s
    for case in fresh + retries:
        if case in chosen:
            continue
        baselines = [BY_ID[name] for name in case.after if name not in ran_now and BY_ID[name] not in chosen]
        if any(baseline.id in unavailable for baseline in baselines):
            continue
        steps = [*baselines, case]
        needed: list[str] = []
        for step in steps:
            needed += [key for key in models_to_build(step, have | set(needed)) if key not in needed]
        cost = sum(case_cost(step, tiny) for step in steps) + sum(build_cost(key, tiny) for key in needed)
        if cost > left:
            continue
        chosen += steps
        have |= set(needed)
        ran_now |= {step.id for step in steps}
        left -= cost
    return chosen


def too_big(cases: list[Case], budget_s: float, tiny: bool = False) -> list[Case]:
    """Cases that no call can run: alone, with their models built, they cost more than a whole call."""
    return [case for case in cases if not plan([case], set(), budget_s, tiny=tiny)]
