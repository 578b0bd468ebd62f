"""Catalogue inputs: a CSV/JSONL file, a Shopify or WooCommerce product export, or a folder of product folders.

Every value read here is hostile until checked: product names must be safe file names, references are
anchored to the catalogue's folder (as a recipe's references are to the recipe's), and columns named
after a recipe key are only accepted for the keys a catalogue may set (prompts and stage configs).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..jsonl import read_rows

# A product names folders of the run: up to 200 characters (Shopify handles run to 255; a file name to 255 bytes).
PRODUCT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
MAX_ROWS = 1_000_000
MAX_VALUE_CHARS = 10_000
# Recipe keys a catalogue column may set for its product: prompts and settings of the per-product stages. Never
# ``acquire.*``: what may be downloaded and decoded (sizes, time, hosts) is the operator's, not a catalogue's.
OVERRIDE_KEY = re.compile(r"(prompt|negative_prompt)|(inputs\.(prompt|negative_prompt))|"
                          r"((mask|generate|filter)\.config\.[A-Za-z_][\w.]*)|((score|filter)\.\d+\.config\.[A-Za-z_][\w.]*)")
# Control characters and every line break str.splitlines() knows: a cell must stay on one line of PNG text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # a URL, or an acquirer's own spec kind


@dataclass
class CatalogProduct:
    """One product of a catalogue: its references, its template variables and its recipe overrides."""

    name: str
    where: str  # "catalog.csv line 3": named in every error about this product
    references: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  # normalised column name -> text
    overrides: dict[str, Any] = field(default_factory=dict)  # recipe key -> value (not a template)
    _origin: dict[str, str] = field(default_factory=dict, repr=False)  # override key -> where it was set
    base_dir: Path | None = None  # the catalogue's folder: relative references and path settings are its
    lines: list[int] = field(default_factory=list, repr=False)  # the catalogue lines of its rows


def variable_name(column: str) -> str:
    """A column name as a template variable: ``Image Src`` -> ``image_src``, ``Body (HTML)`` -> ``body_html``."""
    return re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")


def anchor(spec: str, base_dir: Path) -> str:
    """A catalogue's reference as an absolute path (relative ones are the catalogue folder's) or a URL."""
    spec = spec.strip()
    if _SCHEME.match(spec) or Path(spec).is_absolute():
        return spec
    return str(Path(base_dir) / spec)


def read_catalog(path: Path) -> list[CatalogProduct]:
    """Read a catalogue (file or folder) into its products, in catalogue order."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file (a device, a pipe or a socket), not a catalogue")
    if not path.is_file():
        raise InputError(f"{path}: catalogue not found")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _products(path, _jsonl_rows(path), typed=True)
    return _products(path, _csv_rows(path), typed=False)


# Folders a product folder is never: what macOS puts in every zip it makes (``__MACOSX``) besides dot-folders.
_NOT_PRODUCTS = {"__MACOSX"}


def _read_folder(root: Path) -> list[CatalogProduct]:
    products = []
    for sub in sorted(p for p in root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and p.name not in _NOT_PRODUCTS):
        where = f"{root}: folder {sub.name!r}"
        _check_name(sub.name, where)
        products.append(CatalogProduct(sub.name, where, [str(sub.resolve())], {"product": sub.name}))
    if not products:
        raise InputError(f"{root}: the catalogue folder has no product sub-folders")
    _check_case(products)
    return products


_SAVE_UTF8 = 'save it as "CSV UTF-8": in Excel, File > Save As > CSV UTF-8; in LibreOffice, character set UTF-8'
_BLANK_LINE = ("\n", "\r\n", "\r")


def _csv_text(path: Path) -> str:
    """The file as text: UTF-8 (a byte-order mark, as Shopify and Excel write, tolerated); else the line that is not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read catalogue ({exc.strerror or type(exc).__name__})") from exc
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
                         hint=_SAVE_UTF8) from exc


def _record_start(lines: list[str], consumed: int) -> int:
    """The line a record starts on, given the lines read before it (blank lines before a record are skipped)."""
    n = consumed
    while n < len(lines) and lines[n] in _BLANK_LINE:
        n += 1
    return n + 1


def _csv_rows(path: Path) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    text = _csv_text(path)
    delimiter = _delimiter(text)
    lines = io.StringIO(text, newline="").readlines()
    # strict: a quoted cell left open is an error, not a cell that swallows the rest of the file
    reader = csv.reader(iter(lines), delimiter=delimiter, strict=True)
    consumed = 0
    try:
        fieldnames = next(reader, None) or []
        consumed = reader.line_num
        header = [h.strip() for h in fieldnames]
        _check_header(path, header)
        if {"Handle", "Image Src"} <= set(header):
            kind = "shopify"
        elif {"Name", "Images", "Type"} <= set(header) and ({"SKU", "ID"} & set(header)):
            kind = "woocommerce"
        else:
            kind = "table"
            if header:  # the header is line 1: a missing column is its fault, not the first row's
                _require_columns(header, f"{path}: line 1", _split_note(delimiter, fieldnames))
        rows: list[tuple[int, dict[str, Any]]] = []
        for cells in reader:
            start, consumed = _record_start(lines, consumed), reader.line_num
            if not cells:
                continue  # a blank line
            if len(rows) >= MAX_ROWS:
                raise InputError(f"{path}: more than {MAX_ROWS} rows")
            if len(cells) > len(fieldnames):
                raise InputError(f"{path}: line {start}: more cells than the header has columns")
            row: dict[str, Any] = dict.fromkeys(fieldnames)  # a short row's missing cells are None
            row.update(zip(fieldnames, cells))
            rows.append((start, row))
    except csv.Error as exc:
        start = _record_start(lines, consumed)
        if "end of data" in str(exc):  # the file ended inside a quoted cell
            raise InputError(f"{path}: line {start}: unterminated quoted field",
                             hint='a cell that starts with " must end with "; a " inside it is written ""') from exc
        if "field limit" in str(exc):
            raise InputError(f"{path}: line {start}: a cell is longer than {csv.field_size_limit()} characters "
                             "(an unterminated quoted field?)") from exc
        if "expected after" in str(exc):  # text after a quoted cell's closing quote: '"Vase" 12'
            raise InputError(f"{path}: line {start}: a quoted cell goes on after its closing quote ({exc})",
                             hint='a " inside a quoted cell is written ""') from exc
        raise InputError(f"{path}: line {start}: {exc}") from exc
    return kind, rows


def _delimiter(text: str) -> str:
    """The header line's separator: ',' as Shopify writes, or the ';' / tab that spreadsheets in many locales save.

    Separators inside a quoted header cell (``"Preis, EUR"``) do not count.
    """
    counts = dict.fromkeys((",", ";", "\t"), 0)
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "\r\n":
            break
        elif ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] and not counts[","] else ","


def _split_note(delimiter: str, fieldnames: list[str]) -> str:
    """Which separator the header was split at, and what it gave: for an error about a missing column."""
    name = {",": "','", ";": "';'", "\t": "a tab"}[delimiter]
    shown = ", ".join(repr(f) for f in fieldnames[:4]) + (", ..." if len(fieldnames) > 4 else "")
    other = ("a ';' or tab separated file is read so only when its header line has no ',' outside quotes"
             if delimiter == "," else "a header line with a ',' outside quotes is read as comma-separated")
    return f"the header line was split at {name} into {len(fieldnames)} column(s): {shown}; {other}"


def _check_header(path: Path, header: list[str]) -> None:
    """Two columns that would be one template variable are refused: only one of them could be used."""
    seen: dict[str, str] = {}
    for column in header:
        var = variable_name(column) if "." not in column else column
        if var and var in seen:
            raise InputError(f"{path}: line 1: columns {seen[var]!r} and {column!r} are the same column "
                             f"({{{var}}}): rename or remove one")
        seen.setdefault(var, column)


def _jsonl_rows(path: Path) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    return "table", read_rows(path, limit=MAX_ROWS)


def _products(path: Path, parsed: tuple[str, list[tuple[int, dict[str, Any]]]], *, typed: bool) -> list[CatalogProduct]:
    """``typed``: the values are JSON's (kept as they are); else CSV text (see ``_cell_value``)."""
    kind, rows = parsed
    if not rows:
        raise InputError(f"{path}: the catalogue has no rows")
    base = path.resolve().parent
    by_name: dict[str, CatalogProduct] = {}
    identity: dict[str, str | None] = {}  # product name -> the store's id of the row that made it (WooCommerce)
    for line, row in rows:
        where = f"{path}: line {line}"
        if kind == "shopify":
            name, refs, values = _shopify_row(row, where)
        elif kind == "woocommerce":
            if "variation" in str(row.get("Type", "")).lower():
                continue  # a variant's row: its product has the photos
            name, refs, values = _woo_row(row, where)
        else:
            name, refs, values = _table_row(row, where)
        _check_name(name, where)
        prod = by_name.get(name)
        if prod is None:
            prod = by_name[name] = CatalogProduct(name, where, variables={"product": name}, base_dir=base)
            identity[name] = _woo_identity(row) if kind == "woocommerce" else None
        elif kind == "woocommerce":
            # One row is one product: two rows share a name only when they are the same product (same ID or SKU).
            ident = _woo_identity(row)
            if ident is None or ident != identity[name]:
                raise InputError(f"{where}: this product and the one at line {prod.lines[0]} both get the name "
                                 f"{name!r}: two products would be merged into one",
                                 hint="give them different SKUs; a product without a file-safe SKU is named "
                                      "after its Name")
        prod.lines.append(line)
        prod.references += [anchor(r, base) for r in refs]
        _merge(prod, values, where, typed)
    products = list(by_name.values())
    _check_case(products)
    _check_references(path, kind, products)
    # Every column is a variable of every product: an empty cell (common in store exports) is empty text.
    columns = {variable_name(k) for _, row in rows for k in row if k and "." not in k} - {"", "references"}
    for prod in products:
        for var in columns:
            prod.variables.setdefault(var, "")
    return products


def _woo_identity(row: dict[str, Any]) -> str | None:
    """A WooCommerce row's own id: its ID, else its SKU; None when it has neither."""
    for column in ("ID", "SKU"):
        value = str(row.get(column) or "").strip()
        if value:
            return f"{column} {value}"
    return None


def _lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return f"line {shown}" if len(lines) == 1 else f"lines {shown}"


def _check_case(products: list[CatalogProduct]) -> None:
    """Names that differ only in case would share one folder of the run on macOS and Windows: refused."""
    folded: dict[str, CatalogProduct] = {}
    for prod in products:
        other = folded.setdefault(prod.name.lower(), prod)
        if other is not prod:
            at = _lines(other.lines[:1]) if other.lines else f"folder {other.name!r}"
            raise InputError(f"{prod.where}: product {prod.name!r} and {other.name!r} ({at}) differ only "
                             "in case: on macOS and Windows they would share one folder of the run",
                             hint="rename one of them")


def _check_references(path: Path, kind: str, products: list[CatalogProduct]) -> None:
    """Every product has at least one reference: one without is a catalogue error, found before any work."""
    bare = [p for p in products if not p.references]
    if not bare:
        return
    what = {"shopify": "no 'Image Src' on any of its rows", "woocommerce": "its 'Images' cell is empty"}.get(
        kind, "its 'references' cell is empty")
    first = bare[0]
    message = f"{path}: {_lines(first.lines)}: product {first.name!r} has no photos ({what})"
    if len(bare) > 1:
        others = ", ".join(f"{p.name!r} ({_lines(p.lines)})" for p in bare[1:6]) + (", ..." if len(bare) > 6 else "")
        message += f"; {len(bare) - 1} more without: {others}"
    raise InputError(message, hint="give each product at least one photo, or remove its rows")


def _require_columns(columns: Any, where: str, note: str = "") -> None:
    lower = {str(k).strip().lower() for k in columns}
    tail = f"; {note}" if note else ""
    if "product" not in lower:
        raise InputError(f"{where}: no 'product' column (a catalogue needs 'product' and 'references'{tail})")
    if "references" not in lower:
        raise InputError(f"{where}: no 'references' column (paths, globs or URLs separated by ';'{tail})")


def _table_row(row: dict[str, Any], where: str) -> tuple[str, list[str], dict[str, Any]]:
    _require_columns(row, where)
    lower = {k.strip().lower(): k for k in row}
    name = _text(row[lower["product"]] or "", where, "product")
    if not name:
        raise InputError(f"{where}: the 'product' cell is empty")
    raw = row[lower["references"]]
    if raw is not None and not isinstance(raw, (str, list)):
        raise InputError(f"{where}: 'references' must be text or a list of texts, got {type(raw).__name__}")
    refs = raw if isinstance(raw, list) else str(raw or "").split(";")
    for ref in refs:
        if not isinstance(ref, str):
            raise InputError(f"{where}: 'references' must list texts (paths, globs or URLs), "
                             f"got {type(ref).__name__} {json.dumps(ref)[:40]}")
    refs = [r.strip() for r in refs if r.strip()]
    values = {k: v for k, v in row.items() if k.strip().lower() not in ("product", "references")}
    return name, refs, values


def _shopify_row(row: dict[str, Any], where: str) -> tuple[str, list[str], dict[str, Any]]:
    """Shopify's product export: one row per image or variant, all sharing the product's Handle."""
    name = _text(row.get("Handle") or "", where, "Handle")
    if not name:
        raise InputError(f"{where}: empty Handle (every row of a product repeats its handle)")
    src = str(row.get("Image Src") or "").strip()
    values = {k: v for k, v in row.items() if k not in ("Handle", "Image Src")}
    return name, [src] if src else [], values


def _woo_row(row: dict[str, Any], where: str) -> tuple[str, list[str], dict[str, Any]]:
    """WooCommerce's product export: one row per product, its photos comma-separated in 'Images'.

    The product is named after its SKU, made file-safe (``BAG 01`` -> ``BAG-01``), else after its Name.
    """
    sku = str(row.get("SKU") or "").strip()
    name = sku if PRODUCT_NAME.fullmatch(sku) else re.sub(r"[^A-Za-z0-9_.-]+", "-", sku).strip("-_.")[:200]
    if not name:
        name = re.sub(r"[^a-z0-9]+", "-", str(row.get("Name") or "").lower()).strip("-")[:200]
    ident = str(row.get("ID") or "").strip()
    if not name and PRODUCT_NAME.fullmatch(ident):
        name = ident  # a Name in another script ('Ваза') and no SKU: the export's own ID
    if not name:
        raise InputError(f"{where}: the product's Name {str(row.get('Name') or '')!r} has no characters a file name "
                         "can use (ASCII letters, digits, '.', '_', '-'), and the row has no SKU or ID to name it "
                         "by", hint="give the product a SKU")
    refs = [u.strip() for u in str(row.get("Images") or "").split(",") if u.strip()]
    values = {k: v for k, v in row.items() if k != "Images"}
    return name, refs, values


def _merge(prod: CatalogProduct, values: dict[str, Any], where: str, typed: bool) -> None:
    """Add a row's columns: variables keep their first non-empty value; overrides may not disagree."""
    for column, value in values.items():
        key = column.strip()
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty cell sets nothing
        if "." in key or key in ("prompt", "negative_prompt"):
            if key.split(".")[0] == "acquire":
                raise InputError(f"{where}: column {key!r}: a catalogue may not set acquire settings (what is "
                                 "downloaded and decoded, and how much, is the recipe's and the operator's)",
                                 hint="set it in the recipe, or remove the column")
            if not OVERRIDE_KEY.fullmatch(key):
                raise InputError(f"{where}: column {key!r} is not a recipe key a catalogue may set",
                                 hint="it may set prompt, negative_prompt and <step>.config.<key> for "
                                      "mask, generate, filter (filter.<n> in a list) and score.<n>")
            key = key.removeprefix("inputs.")
            value = _override_value(value, where, key, typed)
            if key in prod.overrides and prod.overrides[key] != value:
                raise InputError(f"{where}: {key!r} is {value!r} here but {prod.overrides[key]!r} at "
                                 f"{prod._origin[key]} for the same product")
            prod.overrides.setdefault(key, value)
            prod._origin.setdefault(key, where)
            continue
        var = variable_name(key)
        if var and var not in prod.variables:
            prod.variables[var] = _variable_text(value, where, key)


def _override_value(value: Any, where: str, key: str, typed: bool) -> Any:
    """A recipe key's value: JSON keeps its types (a JSON string stays that string); a CSV cell is ``_cell_value``."""
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise InputError(f"{where}: {key!r} is longer than {MAX_VALUE_CHARS} characters")
        if key in ("prompt", "negative_prompt"):
            return _CONTROL.sub(" ", value).strip()
        if not typed:
            return _cell_value(value, where, key)
    return value


def _cell_value(text: str, where: str, key: str) -> Any:
    """A CSV cell is its text, except a JSON list (``[256, 320]``). The setting types it: a number setting reads
    ``12`` as 12 and ``true`` as a boolean, a text setting keeps ``1984`` as written; never YAML, so
    ``#000000``, ``1:1`` and ``no`` stay what they are."""
    cell = text.strip()
    if cell.startswith("["):
        try:
            parsed = json.loads(cell, parse_constant=_no_constant)
        except RecursionError as exc:
            raise InputError(f"{where}: {key!r} is nested too deeply") from exc
        except ValueError:
            return cell  # "[new] tee" is text; a setting that wants a list says what it got
        return parsed if isinstance(parsed, list) else cell
    return cell


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a setting can take")


def _variable_text(value: Any, where: str, column: str) -> str:
    """A cell as template text: lists joined, control characters (newlines too) made spaces, length capped."""
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
        kind = "a JSON object" if isinstance(value, dict) else "a list holding a list or object"
        raise InputError(f"{where}: column {column!r} is {kind}: a template variable is text, a number, "
                         "true/false or a list of those", hint="write it as text, or a list of texts")
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = _CONTROL.sub(" ", str(value)).strip()
    if len(text) > MAX_VALUE_CHARS:
        raise InputError(f"{where}: column {column!r} is longer than {MAX_VALUE_CHARS} characters")
    return text


def _text(value: Any, where: str, column: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InputError(f"{where}: {column!r} must be text, got {type(value).__name__}")
    return str(value).strip()


def _check_name(name: str, where: str) -> None:
    if not PRODUCT_NAME.fullmatch(name):
        raise InputError(f"{where}: product name {name!r} must be 1-200 ASCII letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (it names files in the run folder)")
