"""Measure the activation constants of `video_gen.memory`'s estimator: `python bench/memory_constants.py`.

Builds the full-size SVD-XT architecture (`bench/gpu_svd.py`'s configs: diffusers' default
`UNetSpatioTemporalConditionModel` config is SVD-XT's; the VAE's and CLIP's are written out there) with
random weights on the CPU, runs one UNet forward (batch 2: classifier-free guidance, with and without
feed-forward chunking), one VAE decode and the image stage (CLIP + VAE encoder) at two small sizes, and
records the peak of live activation bytes with a dispatch-mode tracker (every tensor storage created during the
call, freed when PyTorch frees it). On the CPU, PyTorch's scaled-dot-product attention is a fused
flash kernel, so attention memory grows linearly with tokens as it does with CUDA's flash and
memory-efficient kernels; activations therefore grow linearly with frames x latent pixels, and the
slope is the constant. The CUDA caching allocator adds fragmentation on top, which is why the
estimator keeps headroom (and why `bench/gpu_svd.py` checks the estimate against measured peaks).

Prints one JSON line: bytes per (batch x frame x latent pixel) for the UNet in fp16, and bytes per
(frame x output pixel) for the VAE decode in fp16.
"""

from __future__ import annotations

import argparse
import json
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakTracker(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the `with` block (weights made before it are not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()  # PyObject-preserved: one Python object per storage
                key = id(storage)
                if key not in self._sizes and key not in inputs:  # a view of an input (a weight's .t()) is not new
                    self._sizes[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)


def unet_peak(unet, frames: int, height: int, width: int) -> int:
    latents = torch.randn(2, frames, 8, height, width)  # CFG batch; 4 noise + 4 image-latent channels
    context = torch.randn(2, 1, 1024)
    added = torch.tensor([[6.0, 127.0, 0.02]] * 2)
    with torch.no_grad(), PeakTracker() as tracker:
        unet(latents, 10.0, context, added, return_dict=False)
    return tracker.peak


def vae_peak(vae, frames: int, height: int, width: int) -> int:
    latents = torch.randn(frames, 4, height, width)
    with torch.no_grad(), PeakTracker() as tracker:
        vae.decode(latents, num_frames=frames)
    return tracker.peak


def encode_peak(vae, encoder, height: int, width: int) -> int:
    """The SVD pipeline's image stage: CLIP on a 224x224 crop, and the VAE encoder on one frame."""
    with torch.no_grad(), PeakTracker() as tracker:
        encoder(torch.randn(1, 3, 224, 224))
        vae.encode(torch.randn(1, 3, height * 8, width * 8))
    return tracker.peak


def set_forward_chunking(unet, chunk_size) -> None:
    for module in unet.modules():
        if hasattr(module, "set_chunk_feed_forward"):
            module.set_chunk_feed_forward(chunk_size=chunk_size, dim=0)


def main() -> None:
    from gpu_svd import svd_xt_image_encoder, svd_xt_unet, svd_xt_vae

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2x8x8,4x8x16", help="frames x latent height x latent width, two of them")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    started = time.perf_counter()
    torch.manual_seed(0)
    unet = svd_xt_unet().eval()
    vae = svd_xt_vae().eval()
    half = 0.5  # measured in fp32 on the CPU; fp16 activations are half the bytes

    unet_points = [(2 * f * h * w, unet_peak(unet, f, h, w) * half) for f, h, w in sizes]
    set_forward_chunking(unet, 1)
    chunked_points = [(2 * f * h * w, unet_peak(unet, f, h, w) * half) for f, h, w in sizes]
    set_forward_chunking(unet, None)
    del unet
    encoder = svd_xt_image_encoder().eval()
    encode_points = [(h * 8 * w * 8, encode_peak(vae, encoder, h, w) * half) for f, h, w in sizes]
    vae_points = [(f * h * 8 * w * 8, vae_peak(vae, f, h, w) * half) for f, h, w in sizes]

    def slope(points):
        (x0, y0), (x1, y1) = points
        return (y1 - y0) / (x1 - x0), y0 - (y1 - y0) / (x1 - x0) * x0

    unet_slope, unet_base = slope(unet_points)
    vae_slope, vae_base = slope(vae_points)
    chunked_slope, chunked_base = slope(chunked_points)
    encode_slope, encode_base = slope(encode_points)
    print(json.dumps({
        "unet_bytes_per_latent_pixel_frame": round(unet_slope),
        "unet_base_bytes": round(unet_base),
        "vae_decode_bytes_per_pixel_frame": round(vae_slope),
        "vae_decode_base_bytes": round(vae_base),
        "forward_chunking_saving": round(1 - chunked_slope / unet_slope, 3),
        "vae_encode_bytes_per_pixel": round(encode_slope),
        "encode_base_bytes": round(encode_base),
        "unet_points": unet_points, "chunked_points": chunked_points, "encode_points": encode_points, "vae_points": vae_points, "sizes": sizes,
        "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
