"""Prompt embeddings kept per resident pipeline and (prompt, negative prompt, options): a second job with the
same prompt skips the text encoder entirely.

Wan's umT5-XXL (about 11 GB in bf16) and LTX's T5-XXL (about 9.5 GB) are the largest parts of their models; on a
12 GB card the memory plan keeps them off the GPU while the transformer runs, so every call costs a round trip of
its weights. Re-running a prompt with another seed, a sweep, or the segments of a long video need the same
embeddings: one entry is small (512 tokens x 4096 x 2 bytes = 4 MB per prompt), so a few are kept.

The cache belongs to the pipeline object, so it goes when the pipeline is unloaded. A LoRA that changes a text
encoder must call `clear(pipe)`.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable

MAX_PROMPTS = 8  # per pipeline: a sweep's or a session's prompts, at ~4-8 MB each

_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()
calls = 0  # encodes run (not served from the cache): tests and benchmarks read it


def cached(pipe, key: tuple, encode: Callable[[], Any]) -> Any:
    """`encode()`'s result for `key` on this pipeline: computed once, then reused. `key` must hold everything
    that changes the embeddings besides the pipeline itself (prompt, negative prompt, guidance on/off, maximum
    sequence length, device, dtype)."""
    global calls
    with _lock:
        cache = _caches.setdefault(pipe, OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = encode()
    with _lock:
        calls += 1
        cache[key] = value
        while len(cache) > MAX_PROMPTS:
            cache.popitem(last=False)
    return value


def clear(pipe) -> None:
    """Forget a pipeline's embeddings (its text encoder changed)."""
    with _lock:
        _caches.pop(pipe, None)


def size(pipe) -> int:
    with _lock:
        return len(_caches.get(pipe, ()))
