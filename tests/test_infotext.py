"""The `parameters` text is AUTOMATIC1111's infotext: a parser written from its format reads every field back."""
from __future__ import annotations

import json
import os
import re
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.imaging.infotext import infotext, is_local_path, public_name, quote, scrub_paths
from ecomforge.imaging.io import atomic_write_bytes, encode_image, read_parameters, save_png


def parse_infotext(text: str) -> dict:
    """A reader of A1111's format as its PNG Info describes it (independent of the writer).

    Lines: the prompt (one or more), optionally ``Negative prompt: ...`` (and continuation lines),
    then a last line of ``Key: value`` pairs separated by commas, a value either bare (up to the
    next comma) or a JSON string. A last line with fewer than three pairs belongs to the prompt.
    """
    *lines, last = text.strip("\n").split("\n")
    pairs = _pairs(last)
    if len(pairs) < 3:
        lines.append(last)
        pairs = []
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    out = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    out.update(pairs)
    out["Loras"] = re.findall(r"<lora:([^:>]+):([^>]+)>", out["Prompt"])
    return out


def _pairs(line: str) -> dict:
    found, i, decoder = {}, 0, json.JSONDecoder()
    while i < len(line):
        m = re.compile(r"\s*([\w ]+):\s*").match(line, i)
        if not m:
            return {}
        key, i = m.group(1), m.end()
        if line.startswith('"', i):
            value, i = decoder.raw_decode(line, i)
        else:
            end = line.find(",", i)
            end = len(line) if end < 0 else end
            value, i = line[i:end], end
        found[key] = value
        if line.startswith(",", i):
            i += 1
    return found


TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
PROMPT = TEXT.filter(lambda t: "<lora:" not in t).map(lambda t: t.strip() or "a photo")
KEY = st.from_regex(r"[A-Z][a-z]{1,8}( [a-z]{1,6})?", fullmatch=True)
VALUE = st.one_of(TEXT.map(str.strip), st.integers(-10**6, 10**6),
                  st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: round(f, 4)))


@settings(max_examples=150, deadline=None)
@given(PROMPT, PROMPT | st.just(""), st.dictionaries(KEY, VALUE, min_size=0, max_size=6),
       st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), st.sampled_from([0.5, 1, 0.75])),
                max_size=2, unique_by=lambda t: t[0]))
def test_round_trip_through_an_a1111_reader(prompt, negative, extra, loras):
    """Every field, commas and colons included, comes back as written; LoRA tags ride in the prompt."""
    fields = {"Steps": 30, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 7.5, "Seed": 12,
              "Size": "512x384", **{k: v for k, v in extra.items() if k not in {"Steps", "Seed"}}}
    text = infotext(prompt, negative, fields, loras)
    got = parse_infotext(text)
    assert got["Prompt"].startswith(prompt.strip())
    assert got["Negative prompt"] == negative.strip()
    for key, value in fields.items():
        want = str(value) if not isinstance(value, float) or value != int(value) else str(int(value))
        if isinstance(value, float) and value != int(value):
            want = repr(value)
        assert got[key] == want, (key, text)
    assert [(n, float(w)) for n, w in got["Loras"]] == [(n, float(w)) for n, w in loras]


def test_quoting_follows_a1111():
    """Bare values stay bare; a comma, colon or newline makes a JSON string."""
    assert quote("Karras") == "Karras" and quote(7.0) == "7" and quote(0.35) == "0.35"
    assert quote("a, b") == '"a, b"' and quote("x: y") == '"x: y"' and quote('say "hi"') == 'say "hi"'
    assert quote('"lead') == '"\\"lead"'


@pytest.mark.parametrize("value,name", [
    ("/home/ann/models/dreamshaper_8.safetensors", "dreamshaper_8"), ("~/m/my-inpaint", "my-inpaint"),
    ("C:\\sd\\models\\juggernaut.safetensors", "juggernaut"), ("./models/x/", "x"),
    ("stable-diffusion-v1-5/stable-diffusion-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting"),
])
def test_models_are_named_never_pathed(value, name):
    """A local file or folder is shown by its name; a hub id as it is."""
    assert public_name(value) == name


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.one_of(st.text(max_size=12), st.integers(), st.none(),
                              st.from_regex(r"/[a-z]{1,6}(/[a-z0-9_.]{1,8}){1,3}", fullmatch=True)),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                    max_leaves=8))
def test_scrub_leaves_no_absolute_path(value):
    """After scrubbing, no string anywhere in the structure is an absolute local path."""
    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)
    assert not any(is_local_path(s) for s in strings(scrub_paths(value)))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_formats_carry_parameters_and_srgb(tmp_path, fmt):
    """PNG keeps a text chunk; JPEG and WebP carry the text in EXIF UserComment and an sRGB profile."""
    from PIL import Image

    image = (np.indices((48, 64)).sum(0) % 255).astype(np.uint8)[..., None].repeat(3, -1)
    text = "a mug, ceramic\nNegative prompt: blur\nSteps: 2, Sampler: Euler, Seed: 1"
    path = tmp_path / f"x.{fmt}"
    atomic_write_bytes(path, encode_image(image, fmt, quality=90, text={"parameters": text}))
    assert read_parameters(path) == text
    with Image.open(path) as im:
        assert im.format == fmt.upper() and im.size == (64, 48)
        if fmt != "png":
            import io

            from PIL import ImageCms

            profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
            assert "sRGB" in ImageCms.getProfileDescription(profile)
    big = encode_image(image, fmt, quality=95)
    small = encode_image(image, fmt, quality=30)
    assert fmt == "png" or len(small) < len(big)


def test_atomic_writes_honour_the_umask(tmp_path):
    """Files get 0666 less the umask like open() gives, not mkstemp's 0600."""
    old = os.umask(0o027)
    try:
        save_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o640
    save_png(tmp_path / "b.png", np.zeros((4, 4, 3), np.uint8))
    assert stat.S_IMODE((tmp_path / "b.png").stat().st_mode) == 0o666 & ~old


@settings(max_examples=100, deadline=None)
@given(PROMPT, st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\x0b"]), st.sampled_from(["Negative prompt: evil",
       "Steps: 999, Seed: 1", "Model hash: 0000000000"]))
def test_a_prompt_cannot_forge_lines(prompt, newline, forged):
    """A line break in a prompt is a space in the infotext: its text cannot read back as a negative prompt or fields."""
    fields = {"Steps": 30, "Seed": 12, "Model hash": "abcdef1234"}
    got = parse_infotext(infotext(f"{prompt}{newline}{forged}", "", fields))
    assert got["Steps"] == "30" and got["Seed"] == "12" and got["Model hash"] == "abcdef1234"
    assert got.get("Negative prompt", "") == "" and forged in got["Prompt"]
