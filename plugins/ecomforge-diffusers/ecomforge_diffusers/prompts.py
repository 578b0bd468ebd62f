"""Prompt encoding beyond CLIP's 77 tokens, with AUTOMATIC1111 attention weights honoured.

The prompt is tokenized without special tokens, cut into chunks of 75 tokens, each chunk wrapped
in BOS/EOS and padded to 77, encoded separately, and the encoder outputs concatenated along the
sequence axis (what A1111 does). A weight scales its tokens' embeddings; the chunk is then
rescaled to its original mean so that weights shift emphasis rather than overall magnitude.
"""
from __future__ import annotations

import re
from typing import Any

from ecomforge.errors import RecipeError

# (text), (text:1.3), [text] and escaped \( \) \[ \]
_TOKEN = re.compile(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|]|[^\\()\[\]:]+|:")
ROUND_UP, SQUARE_DOWN = 1.1, 1 / 1.1


def has_weights(prompt: str) -> bool:
    """True when the prompt uses A1111 emphasis syntax (unescaped brackets)."""
    return any(seg_w != 1.0 for _, seg_w in parse_weights(prompt))


def parse_weights(prompt: str) -> list[tuple[str, float]]:
    """Split an A1111 prompt into (text, weight) runs: '(a:1.3)' → 1.3, '(a)' ×1.1, '[a]' ÷1.1."""
    return _merge_runs(_weighted_pieces(prompt)) or [("", 1.0)]


def _weighted_pieces(prompt: str) -> list[tuple[str, float]]:
    """Every text piece of the prompt with the product of the brackets around it."""
    out: list[tuple[str, float]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for i in range(start, len(out)):
            out[i] = (out[i][0], out[i][1] * factor)

    for m in _TOKEN.finditer(prompt):
        tok, weight = m.group(0), m.group(1)
        if tok.startswith("\\") and len(tok) == 2:
            out.append((tok[1], 1.0))
        elif tok == "(":
            round_open.append(len(out))
        elif tok == "[":
            square_open.append(len(out))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif tok == ")" and round_open:
            scale(round_open.pop(), ROUND_UP)
        elif tok == "]" and square_open:
            scale(square_open.pop(), SQUARE_DOWN)
        else:
            out.append((tok, 1.0))
    for start in round_open:  # unclosed brackets still emphasise, as in A1111
        scale(start, ROUND_UP)
    for start in square_open:
        scale(start, SQUARE_DOWN)
    return out


def _merge_runs(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Neighbouring pieces of equal weight joined into one run; empty pieces dropped."""
    merged: list[tuple[str, float]] = []
    for text, w in pieces:
        if merged and merged[-1][1] == w:
            merged[-1] = (merged[-1][0] + text, w)
        elif text:
            merged.append((text, w))
    return merged


def _tokens(tokenizer: Any, prompt: str, weighting: bool, key: str) -> tuple[list[int], list[float]]:
    """Token ids (no BOS/EOS) and one weight per token."""
    runs = parse_weights(prompt)
    if not weighting:
        if any(w != 1.0 for _, w in runs):
            raise RecipeError(key, "uses AUTOMATIC1111 weights like '(word:1.3)' but prompt_weighting is off",
                              hint="set generate.config.prompt_weighting=true or escape the brackets as \\( \\)")
        runs = [(prompt, 1.0)]
    ids: list[int] = []
    weights: list[float] = []
    for text, w in runs:
        # verbose=False: no "sequence length is longer than the maximum" warning; chunking is why it is longer
        piece = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
        ids += piece
        weights += [w] * len(piece)
    return ids, weights


def encode_chunks(pipe: Any, prompt: str, negative: str, *, weighting: bool, device: Any) -> tuple[Any, Any, dict]:
    """Encode prompt and negative prompt as (1, 77·k, D) embeddings of equal length; returns info too."""
    import torch

    tok, enc = pipe.tokenizer, pipe.text_encoder
    width = tok.model_max_length - 2
    pos_ids, pos_w = _tokens(tok, prompt, weighting, "inputs.prompt")
    neg_ids, neg_w = _tokens(tok, negative, weighting, "inputs.negative_prompt")
    chunks = max(1, -(-len(pos_ids) // width), -(-len(neg_ids) // width))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def encode(ids: list[int], weights: list[float]) -> Any:
        parts = []
        for c in range(chunks):
            body, w = ids[c * width:(c + 1) * width], weights[c * width:(c + 1) * width]
            row = [tok.bos_token_id] + body + [tok.eos_token_id]
            row_w = [1.0] + w + [1.0]
            row += [pad] * (width + 2 - len(row))
            row_w += [1.0] * (width + 2 - len(row_w))
            with torch.no_grad():
                z = enc(torch.tensor([row], device=device)).last_hidden_state
            if any(x != 1.0 for x in row_w):
                mean = z.mean()
                z = z * torch.tensor(row_w, device=device, dtype=z.dtype)[None, :, None]
                z = z * (mean / z.mean())
            parts.append(z)
        return torch.cat(parts, dim=1)

    info = {"prompt_tokens": len(pos_ids), "prompt_chunks": chunks}
    return encode(pos_ids, pos_w), encode(neg_ids, neg_w), info


def encode_for(pipe: Any, prompt: str, negative: str, *, weighting: bool, device: Any) -> tuple[Any, Any, dict]:
    """Chunked embeddings for SD-1.5-class pipelines; for SDXL (two encoders) the plain prompt strings.

    SDXL's pooled second encoder does not chunk, so there the pipeline encodes the text itself
    (77 tokens) and emphasis syntax is refused rather than passed through as literal brackets.
    """
    if getattr(pipe, "text_encoder_2", None) is None:
        return encode_chunks(pipe, prompt, negative, weighting=weighting, device=device)
    texts = []
    for text, key in ((prompt, "inputs.prompt"), (negative, "inputs.negative_prompt")):
        runs = parse_weights(text)
        if any(w != 1.0 for _, w in runs):
            raise RecipeError(key, "AUTOMATIC1111 weights like '(word:1.3)' are not supported for SDXL models",
                              hint="remove the brackets or escape them as \\( \\)")
        texts.append("".join(t for t, _ in runs))
    return texts[0], texts[1], {"prompt_tokens": None, "prompt_chunks": 1}
