"""Model loads without transformers' progress bars ("Loading weights"), leaving the user's settings alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_depth = 0  # loads in progress (several threads may load at once)
_installed = False  # whether the outermost load installed our hook


def _no_bar(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return factory(*args, **{**kwargs, "disable": True})


@contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Hide the progress bars transformers draws while a model loads (transformers 5 draws one per
    load, on standard error). Done with transformers' tqdm hook, set for the duration of the load
    only, so the user's own choice (``disable_progress_bar()``, ``HF_HUB_DISABLE_PROGRESS_BARS``)
    is neither read nor changed; a hook the user installed is kept (their bars stay theirs). Bars
    of a model another thread loads meanwhile are hidden too. Older transformers without the hook
    (and without that bar) are left as they are."""
    global _depth, _installed
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return
    with _lock:
        if _depth == 0:
            previous = set_hook(_no_bar)
            _installed = previous is None
            if not _installed:
                set_hook(previous)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _installed:
                _installed = False
                current = set_hook(None)
                if current is not _no_bar:  # the user set a hook meanwhile: theirs stays
                    set_hook(current)
