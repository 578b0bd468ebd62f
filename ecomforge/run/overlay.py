"""Mask overlays for the report: the product outlined and the background dimmed."""
from __future__ import annotations

import cv2
import numpy as np


def mask_overlay(image: np.ndarray, mask: np.ndarray, *, max_side: int = 512) -> np.ndarray:
    """The reference with the background darkened and the mask's outline drawn, at most ``max_side`` px."""
    h, w = mask.shape
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    out = img.astype(np.float32)
    out[m == 0] = out[m == 0] * 0.35 + np.array([20, 40, 90], np.float32) * 0.65
    out = out.clip(0, 255).astype(np.uint8)
    contours, _ = cv2.findContours((m > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 64, 64), max(1, round(2 * scale + 0.5)))
    return out
