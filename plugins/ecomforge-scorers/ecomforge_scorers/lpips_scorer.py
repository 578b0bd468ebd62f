"""LPIPS perceptual similarity between aligned product crops (Zhang et al. 2018, AlexNet trunk)."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ecomforge.errors import ModelNotFound
from ecomforge.models import MODEL_CACHE, check_device, offline, resolve_device
from ecomforge.run import cancel
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .embedding import EMBEDDINGS, FAILED, LOW
from .regions import NEUTRAL_GREY, array_hash, product_crop

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
"""torchvision's ImageNet AlexNet weights, which LPIPS's trunk loads from the torch hub cache."""


def alexnet_weights_path() -> Path:
    """Where torchvision looks for (and would download) the AlexNet trunk weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def check_lpips(backbone: str, key: str = "backbone") -> None:
    """backbone: pretrained needs the AlexNet trunk on disk when offline: fail before any work, naming ``key``."""
    path = alexnet_weights_path()
    if backbone == "pretrained" and offline() and not path.is_file():
        raise ModelNotFound(f"{key}: pretrained: offline, and the LPIPS AlexNet trunk weights are not at {path}",
                            hint=f"download https://download.pytorch.org/models/{ALEXNET_FILE} there, "
                                 "or set backbone: random")


def load_lpips(backbone: str, device: str) -> tuple[Any, str]:
    """The LPIPS model and its id; 'auto' uses the ImageNet trunk when on disk (or downloadable), else random."""
    path = alexnet_weights_path()
    check_lpips(backbone)
    use_pretrained = backbone == "pretrained" or (backbone == "auto" and (path.is_file() or not offline()))
    key = ("lpips", "alex", "imagenet" if use_pretrained else "random", device)
    return MODEL_CACHE.get(key, lambda: _build(use_pretrained, backbone, device))


def _build(use_pretrained: bool, backbone: str, device: str) -> tuple[Any, str]:
    import lpips
    import torch

    if use_pretrained:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained=' deprecation
                model = lpips.LPIPS(net="alex", verbose=False)
            return model.eval().to(device), "lpips-alex-v0.1"
        except Exception as exc:  # no network: fall back like an offline machine unless asked not to
            if backbone == "pretrained":
                raise ModelNotFound(f"cannot load LPIPS AlexNet trunk ({type(exc).__name__}: {exc})",
                                    hint=f"put {ALEXNET_FILE} in {alexnet_weights_path().parent}") from exc
    # The linear calibration layers ship inside the lpips package; only the trunk is random. Seeded
    # so that every process gets the same random trunk (and the same scores).
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(0)
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    if backbone == "auto":  # asked for real LPIPS where possible: say that this is not it
        warnings.warn("LPIPS: AlexNet trunk weights not found, using a seeded RANDOM trunk "
                      f"(put {ALEXNET_FILE} in {alexnet_weights_path().parent} for real LPIPS)", stacklevel=2)
    return model.eval().to(device), "lpips-alex-v0.1+random-trunk"


class LpipsScorer(Scorer):
    """LPIPS similarity of the candidate's and the references' product crops: ``1 - clip(d / max_distance, 0, 1)``.

    Both crops (mask bounding box plus margin, outside-mask pixels grey, padded square) are
    resized to ``size`` so that they are compared pixel-aligned. LPIPS distances (AlexNet, v0.1)
    are about 0 for the same image, 0.1–0.3 for mild edits and 0.5–0.8 for unrelated images, so
    with the default ``max_distance=1`` the score is ``1 - d``. Without the ImageNet AlexNet
    weights (offline machines) the trunk is random and seeded: distances shrink and carry less
    meaning; ``identity()`` then says ``+random-trunk``.
    """

    name = "lpips"

    class Config(StageConfig):
        backbone: Literal["auto", "pretrained", "random"] = Field(
            "auto", description="AlexNet trunk: ImageNet weights, a seeded random trunk, or whichever is available.")
        size: int = Field(128, ge=32, le=1024, description="Side (px) both product crops are resized to.")
        max_distance: float = Field(1.0, gt=0.0, le=10.0, description="LPIPS distance that maps to score 0.")
        reduce: Literal["max", "mean"] = Field("max", description="Combine several references: best match or average.")
        margin: float = Field(0.08, ge=0.0, le=1.0, description="Context around the product box, fraction of its long side.")
        fill: int = Field(NEUTRAL_GREY, ge=0, le=255, description="Grey level replacing pixels outside the product mask.")
        use_masks: bool = Field(True, description="Compare product regions (masks); false compares whole images.")
        batch_size: int = Field(16, ge=1, le=1024, description="Images per forward pass.")

    model: Any = None
    model_id: str = ""

    def __init__(self, config: Any = None, *, device: str = "auto", path: str = "config") -> None:
        super().__init__(config, device=device, path=path)
        self.key_path = path

    def check(self) -> None:
        """backbone: pretrained offline needs the AlexNet trunk on disk: fail before any work."""
        check_device(self.device)
        check_lpips(self.config.backbone, f"{self.key_path}.backbone")

    def setup(self) -> None:
        """Load LPIPS once (through MODEL_CACHE)."""
        self.device = resolve_device(self.device)
        self.model, self.model_id = load_lpips(self.config.backbone, self.device)

    def identity(self) -> dict[str, str]:
        """The LPIPS variant (and whether its trunk is random)."""
        self.ensure_setup()
        return {"lpips": self.model_id}

    def _tensor(self, image: np.ndarray, mask: np.ndarray | None) -> Any:
        import cv2
        import torch

        cfg = self.config
        crop = product_crop(image, mask if cfg.use_masks else None, margin=cfg.margin, fill=cfg.fill)
        crop = cv2.resize(crop, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(crop).permute(2, 0, 1).float() / 127.5 - 1.0  # LPIPS wants [-1, 1]

    def features(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> np.ndarray:
        """(N, F): every layer's unit-normalised AlexNet activations, flattened, in batches."""
        import lpips
        import torch

        out = []
        step = self.config.batch_size
        for start in range(0, len(images), step):
            cancel.check()  # a scoring pass over many candidates stops between batches
            batch = torch.stack([self._tensor(im, m) for im, m in zip(images[start:start + step], masks[start:start + step])])
            with torch.inference_mode():
                layers = self.model.net.forward(self.model.scaling_layer(batch.to(self.device)))
                flat = [lpips.normalize_tensor(f).flatten(1) for f in layers]
            out.append(torch.cat(flat, 1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def distances(self, cand: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """(N, R) LPIPS distances between feature rows (the second half of ``LPIPS.forward``)."""
        import torch

        shapes = self._layer_shapes()
        a, b = torch.from_numpy(cand).to(self.device), torch.from_numpy(refs).to(self.device)
        total = torch.zeros(len(cand), len(refs), device=self.device)
        with torch.inference_mode():
            offset = 0
            for lin, (c, h, w) in zip(self.model.lins, shapes):
                n = c * h * w
                fa = a[:, offset:offset + n].reshape(-1, 1, c, h, w)
                fb = b[:, offset:offset + n].reshape(1, -1, c, h, w)
                diff = ((fa - fb) ** 2).reshape(-1, c, h, w)
                total += lin(diff).mean(dim=(1, 2, 3)).reshape(len(cand), len(refs))
                offset += n
        return total.cpu().numpy()

    def _layer_shapes(self) -> list[tuple[int, int, int]]:
        import torch

        probe = torch.zeros(1, 3, self.config.size, self.config.size, device=self.device)
        with torch.inference_mode():
            return [tuple(f.shape[1:]) for f in self.model.net.forward(probe)]

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """``1 - clip(d / max_distance, 0, 1)`` to the best (or mean) reference; failed candidates score 0. A low
        score says the distance."""
        self.ensure_setup()
        if not context.references:
            raise ValueError("lpips: the scoring context has no references")
        cfg = self.config
        live = [i for i, c in enumerate(candidates) if c.failed is None]
        scores = [Score(0.0, FAILED)] * len(candidates)
        if not live:
            return scores
        masks = [m.data for m in context.masks] + [None] * (len(context.references) - len(context.masks))
        keys = [("lpips", array_hash(r.image), array_hash(m) if cfg.use_masks else "none", self.model_id,
                 cfg.size, cfg.margin, cfg.fill) for r, m in zip(context.references, masks)]
        refs = EMBEDDINGS.get_many(keys, lambda idx: self.features([context.references[i].image for i in idx],
                                                                    [masks[i] for i in idx]))
        cands = self.features([candidates[i].image for i in live], [candidates[i].mask for i in live])
        d = np.round(self.distances(cands, refs), 5)
        d = np.where(np.isfinite(d), d, np.inf)
        combined = d.min(axis=1) if cfg.reduce == "max" else d.mean(axis=1)
        which = "closest reference" if cfg.reduce == "max" else "references on average"
        for i, value in zip(live, combined):
            score = float(1.0 - np.clip(value / cfg.max_distance, 0.0, 1.0))
            reason = (f"the product's detail differs from the {which} (LPIPS distance {value:.2f}; "
                      f"{cfg.max_distance:.2f} scores 0)") if score < LOW else ""
            scores[i] = Score(score, reason)
        return scores
