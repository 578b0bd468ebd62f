"""SAM image embeddings computed once per (model, reference) and reused by every prompt."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

# ``sam`` arguments are checkpoints.LoadedSam (not imported: checkpoints imports this module).


class LRU:
    """A small thread-safe least-recently-used map (embeddings and proposals are megabytes each)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The value for ``key``, computed by ``make()`` on a miss (outside the lock)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = make()
        with self._lock:
            self.misses += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


EMBEDDINGS = LRU(max_items=8)
"""Process-wide: (model id, reference sha256, crop digest) -> (features, original_size, input_size)."""


def pixels_digest(image: np.ndarray) -> str:
    """A short content hash of an image array (for crops, which have no file hash of their own)."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=12).hexdigest() + str(image.shape)


def make_predictor(sam: Any, cache: LRU = EMBEDDINGS) -> Any:
    """A ``SamPredictor`` whose ``set_image`` looks the embedding up before running the encoder."""
    from segment_anything import SamPredictor

    class CachingPredictor(SamPredictor):
        """SamPredictor that reuses image embeddings; the automatic mask generator uses it too."""

        reference_sha256: str | None = None
        reference_shape: tuple[int, ...] | None = None

        def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
            """Restore the cached embedding for this image, or compute and cache it."""
            if image_format != self.model.image_format:
                image = image[..., ::-1]
            # The whole reference is keyed by its file hash; crops (crop_n_layers > 0) by their pixels.
            whole = self.reference_sha256 is not None and image.shape == self.reference_shape
            key = (sam.model_id, sam.device, self.reference_sha256 if whole else pixels_digest(image))

            def encode() -> tuple:
                SamPredictor.set_image(self, image, self.model.image_format)
                return self.features, self.original_size, self.input_size

            self.reset_image()
            self.features, self.original_size, self.input_size = cache.get(key, encode)
            self.is_image_set = True

    return CachingPredictor(sam.model)


class SamSession:
    """One loaded SAM with its caching predictor; a lock serialises use of the stateful predictor."""

    def __init__(self, sam: Any, cache: LRU = EMBEDDINGS) -> None:
        self.sam = sam
        self.predictor = make_predictor(sam, cache)
        self.lock = threading.Lock()

    def set_reference(self, image: np.ndarray, sha256: str) -> None:
        """Point the predictor at a reference (call with ``lock`` held); encodes only on a cache miss."""
        self.predictor.reference_sha256 = sha256
        self.predictor.reference_shape = image.shape
        self.predictor.set_image(image)

    def predict(self, *, points: np.ndarray | None = None, labels: np.ndarray | None = None,
                box: np.ndarray | None = None, mask_logits: np.ndarray | None = None,
                multimask: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Masks (N×H×W bool) and predicted IoUs for prompts on the current reference."""
        import torch

        with torch.inference_mode():
            masks, ious, _ = self.predictor.predict(point_coords=points, point_labels=labels, box=box,
                                                    mask_input=mask_logits, multimask_output=multimask)
        return masks.astype(bool), ious.astype(np.float32)


_SESSIONS: dict[str, SamSession] = {}
_SESSIONS_LOCK = threading.Lock()


def session_for(sam: Any) -> SamSession:
    """The process-wide session of a loaded model (one predictor per model, shared by maskers)."""
    with _SESSIONS_LOCK:
        key = f"{sam.model_id}|{sam.device}"
        if key not in _SESSIONS or _SESSIONS[key].sam.model is not sam.model:
            _SESSIONS[key] = SamSession(sam)
        return _SESSIONS[key]
