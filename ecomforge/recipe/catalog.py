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

from ..errors import InputError, RecipeError, UsageError
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
# Errors of independent rows shown at once (each its own line): fixing a file should not take one run per cell.
MAX_REPORTED = 10
SUPPORTED = ("a CSV or JSONL (.jsonl, .ndjson) file with 'product' and 'references' columns, a Shopify or "
             "WooCommerce product CSV export, or a folder of product folders")


class RowErrors(RecipeError, InputError):
    """The errors of several catalogue rows (or products): the CLI prints each as a line of its own (``lines``);
    ``one_line`` (the web, a log) is the first, saying how many more there are."""

    def __init__(self, errors: list[UsageError], total: int) -> None:
        self.errors, self.total = errors, total
        super().__init__("", errors[0].message, hint=errors[0].hint)

    def lines(self) -> list[str]:
        """Each error's own line, then '... and N more' where more were found than are shown."""
        more = [f"... and {self.total - len(self.errors)} more"] if self.total > len(self.errors) else []
        return [e.one_line() for e in self.errors] + more

    def one_line(self) -> str:
        """The first error's line and how many more were found."""
        return f"{self.errors[0].one_line()} (and {self.total - 1} more error(s))"

    def prefixed(self, prefix: str) -> RowErrors:
        """The same errors with ``prefix`` (the recipe file) before each recipe error's line, as ``load_recipe``
        names a single one; a catalogue's own errors already name their file."""
        return RowErrors([RecipeError("", f"{prefix}{e.message}", hint=e.hint) if isinstance(e, RecipeError) else e
                          for e in self.errors], self.total)


class Problems:
    """Errors of rows (or products) that are checked independently, gathered so one run reports up to
    ``MAX_REPORTED`` of them, then raised together by ``check``."""

    def __init__(self) -> None:
        self.errors: list[UsageError] = []
        self.total = 0

    def each(self) -> Problems:
        """``with problems.each():`` around one row's checks: a usage error is noted and the next row goes on."""
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, RowErrors):
            for err in exc.errors:
                self.add(err)
            self.total += exc.total - len(exc.errors)
            return True
        if isinstance(exc, UsageError):
            self.add(exc)
            return True
        return False  # no error, or one that is not the row's (a plugin's, a cancel): it goes on up

    def add(self, exc: UsageError) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(exc)

    def check(self) -> None:
        """Raise what was found: one error as itself, several as one ``RowErrors``."""
        if self.total == 1:
            raise self.errors[0]
        if self.total:
            raise RowErrors(self.errors, self.total)


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
    problems = Problems()
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _products(path, _jsonl_rows(path), typed=True, problems=problems)
    return _products(path, _csv_rows(path, problems), typed=False, problems=problems)


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
        if path.suffix.lower() in _WORKBOOK or data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
            raise _unsupported(path, "a spreadsheet workbook", _SAVE_UTF8) from exc
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
                         hint=_SAVE_UTF8) from exc


# Files that are not catalogues (their content or their name says so), and what to do instead.
_WORKBOOK = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
_YAML_SUFFIXES = (".yaml", ".yml")
_YAML_LINE = re.compile(r"""(---|%YAML|- |([A-Za-z_][\w .-]*|"[^"]*"|'[^']*')\s*:(\s|$))""")


def _foreign_kind(path: Path, text: str) -> str | None:
    """'JSON' or 'YAML' for a file whose content says it is one (or, for YAML, its name), not a CSV; else None.

    Asked only of a file whose header is no catalogue's, so a CSV named ``.json`` with the right columns is read,
    and one with the wrong columns is told which are missing (JSON always starts with '[' or '{')."""
    head = text.lstrip()
    if head[:1] in ("[", "{"):
        return "JSON"
    first = next((ln for ln in head.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if _YAML_LINE.match(first) and not any(d in first for d in ",;\t"):  # 'Title: EN,...' may be a CSV header
        return "YAML"
    return "YAML" if path.suffix.lower() in _YAML_SUFFIXES else None


def _unsupported(path: Path, kind: str, advice: str) -> InputError:
    return InputError(f"{path}: {kind} is not a kind of catalogue ecomforge reads; it reads {SUPPORTED}",
                      hint=advice)


def _foreign_error(path: Path, text: str) -> InputError | None:
    """The error for a JSON or YAML file given as a catalogue (with what to do instead), or None for a CSV."""
    kind = _foreign_kind(path, text)
    if kind is None:
        return None
    advice = "save it as CSV, or as JSON Lines (one JSON object a line) named .jsonl"
    if kind == "JSON":
        first = text.lstrip().splitlines()[0]
        try:
            one_row = isinstance(json.loads(first), dict)
        except ValueError:
            one_row = False
        if one_row:
            advice = "it looks like JSON Lines (one JSON object a line): name it .jsonl"
    return _unsupported(path, f"a {kind} file", advice)


def _known_header(header: list[str]) -> bool:
    """A header that some catalogue kind reads: 'product' and 'references', or a store's export."""
    columns = set(header)
    lower = {h.lower() for h in header}
    return ({"product", "references"} <= lower or {"Handle", "Image Src"} <= columns
            or ({"Name", "Images", "Type"} <= columns and bool({"SKU", "ID"} & columns)))


def _record_start(lines: list[str], consumed: int) -> int:
    """The line a record starts on, given the lines read before it (blank lines before a record are skipped)."""
    n = consumed
    while n < len(lines) and lines[n] in _BLANK_LINE:
        n += 1
    return n + 1


def _csv_rows(path: Path, problems: Problems) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """The export kind and (line, row) of every record; a row with too many cells is noted in ``problems``."""
    text = _csv_text(path)
    delimiter = _delimiter(text)
    lines = io.StringIO(text, newline="").readlines()
    # strict: a quoted cell left open is an error, not a cell that swallows the rest of the file
    reader = csv.reader(iter(lines), delimiter=delimiter, strict=True)
    consumed = 0
    try:
        fieldnames = next(reader, None) or []
        consumed = reader.line_num
        kind = _header_kind(path, text, fieldnames, delimiter)
        rows: list[tuple[int, dict[str, Any]]] = []
        for cells in reader:
            start, consumed = _record_start(lines, consumed), reader.line_num
            if not cells:
                continue  # a blank line
            if len(rows) >= MAX_ROWS:
                raise InputError(f"{path}: more than {MAX_ROWS} rows")
            if len(cells) > len(fieldnames):
                problems.add(InputError(f"{path}: line {start}: more cells than the header has columns"))
                continue
            row: dict[str, Any] = dict.fromkeys(fieldnames)  # a short row's missing cells are None
            row.update(zip(fieldnames, cells))
            rows.append((start, row))
    except csv.Error as exc:
        if consumed == 0 and (foreign := _foreign_error(path, text)) is not None:
            raise foreign from exc  # its very first record is no CSV
        # the rows before it that were refused, then the record that stops the reading
        problems.add(_csv_error(path, exc, _record_start(lines, consumed)))
        problems.check()  # raises: it holds this one at least
    return kind, rows


def _header_kind(path: Path, text: str, fieldnames: list[str], delimiter: str) -> str:
    """'shopify', 'woocommerce' or 'table' (which needs 'product' and 'references'), from the header line."""
    header = [h.strip() for h in fieldnames]
    if header and not _known_header(header) and (foreign := _foreign_error(path, text)) is not None:
        raise foreign  # a JSON or YAML file: its header split at ',' would only confuse
    _check_header(path, header)
    if {"Handle", "Image Src"} <= set(header):
        return "shopify"
    if {"Name", "Images", "Type"} <= set(header) and ({"SKU", "ID"} & set(header)):
        return "woocommerce"
    if header:  # the header is line 1: a missing column is its fault, not the first row's
        _require_columns(header, f"{path}: line 1", _split_note(delimiter, fieldnames))
    return "table"


def _csv_error(path: Path, exc: csv.Error, start: int) -> InputError:
    """What the CSV reader's complaint about the record at line ``start`` means, and what to do."""
    if "end of data" in str(exc):  # the file ended inside a quoted cell
        return InputError(f"{path}: line {start}: unterminated quoted field",
                          hint='a cell that starts with " must end with "; a " inside it is written ""')
    if "field limit" in str(exc):
        return InputError(f"{path}: line {start}: a cell is longer than {csv.field_size_limit()} characters "
                          "(an unterminated quoted field?)")
    if "expected after" in str(exc):  # text after a quoted cell's closing quote: '"Vase" 12'
        return InputError(f"{path}: line {start}: a quoted cell goes on after its closing quote ({exc})",
                          hint='a " inside a quoted cell is written ""')
    return InputError(f"{path}: line {start}: {exc}")


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


def _products(path: Path, parsed: tuple[str, list[tuple[int, dict[str, Any]]]], *, typed: bool,
              problems: Problems) -> list[CatalogProduct]:
    """``typed``: the values are JSON's (kept as they are); else CSV text (see ``_cell_value``).

    Each row is checked on its own: a bad row is noted in ``problems`` and the next goes on; they are raised
    together (up to ``MAX_REPORTED`` lines) before the checks across products."""
    kind, rows = parsed
    if not rows:
        problems.check()
        raise InputError(f"{path}: the catalogue has no rows")
    base = path.resolve().parent
    by_name: dict[str, CatalogProduct] = {}
    identity: dict[str, str | None] = {}  # product name -> the store's id of the row that made it (WooCommerce)
    for line, row in rows:
        if kind == "woocommerce" and "variation" in str(row.get("Type", "")).lower():
            continue  # a variant's row: its product has the photos
        with problems.each():
            _add_row(path, kind, line, row, by_name, identity, base, typed)
    problems.check()
    products = list(by_name.values())
    _check_case(products)
    _check_references(path, kind, products)
    # Every column is a variable of every product: an empty cell (common in store exports) is empty text.
    columns = {variable_name(k) for _, row in rows for k in row if k and "." not in k} - {"", "references"}
    for prod in products:
        for var in columns:
            prod.variables.setdefault(var, "")
    return products


def _add_row(path: Path, kind: str, line: int, row: dict[str, Any], by_name: dict[str, CatalogProduct],
             identity: dict[str, str | None], base: Path, typed: bool) -> None:
    """One row into its product (made on its first row): name, references and columns checked."""
    where = f"{path}: line {line}"
    if kind == "shopify":
        name, refs, values = _shopify_row(row, where)
    elif kind == "woocommerce":
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
