"""A user's own table: a CSV with a header, a binary (or binarized) target and optionally a site column. Every
problem with the file is a DataError naming the file, the column or line, and the fix."""

from __future__ import annotations

import csv
import hashlib
import io
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from study.data.preprocess import Schema
from study.data.sources import Dataset, DataError, DataSource, PublicSchema

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# A column is numeric when at least this share of its filled cells are numbers; the rest is then junk to report.
NUMERIC_SHARE = 0.8
MIN_ROWS_PER_SITE = 2  # one to train on, one to test on
MAX_MAGNITUDE = 1e15  # sums of squares of larger values lose all precision (or overflow) in float64
_TRUE_FALSE = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def read_user_csv(source: DataSource, *, one_site: bool = False) -> Dataset:
    """The whole table; with `one_site`, one site's own file in a deployment, where a single class is allowed (the
    federation still has both, and the local arm is not run)."""
    path = Path(source.path)
    payload = _read_bytes(path)
    header, rows, line_numbers = _parse(path, payload)
    table = pd.DataFrame(rows, columns=header, index=line_numbers, dtype=object)
    missing = table.apply(lambda column: column.str.strip().str.lower().isin(MISSING_TOKENS))
    target, rule = _binary_target(path, table, missing, source, one_site)
    site_labels = _site_labels(path, table, missing, source.site_column) if source.site_column else None
    feature_columns = [c for c in header if c not in (source.target, source.site_column)]
    if not feature_columns:
        raise DataError(f"--data: {path} has no feature columns besides the target and site columns; add features")
    features, categorical = _features(path, table[feature_columns], missing[feature_columns])
    if site_labels is None and len(target) < MIN_ROWS_PER_SITE * source.sites:
        raise DataError(f"--data: {path} has {len(target)} rows, fewer than {MIN_ROWS_PER_SITE} per site for "
                        f"{source.sites} sites; use fewer --sites or more rows")
    public, schema_bytes = (read_public_schema(Path(source.public_schema), features, categorical)
                            if source.public_schema else (None, b""))
    n_sites = "" if site_labels is None else f", {len(pd.unique(site_labels))} sites from column {source.site_column!r}"
    return Dataset(
        name=path.name,
        features=features,
        target=target,
        description=(f"{path.name}: {len(target)} rows, {len(feature_columns)} feature columns "
                     f"({len(feature_columns) - len(categorical)} numeric, {len(categorical)} categorical){n_sites}."),
        target_rule=rule,
        categorical=tuple(categorical),
        site_labels=site_labels,
        public=public,
        fingerprint=hashlib.sha256(payload + schema_bytes).hexdigest(),
    )


def read_public_schema(path: Path, features: pd.DataFrame, categorical: list[str]) -> tuple[PublicSchema, bytes]:
    """The user's public bounds for the DP arms (TOML): [ranges] column = [low, high] for every numeric column,
    [categories] column = [values] for every categorical one, and an optional top-level may-be-missing list."""
    try:
        payload = path.read_bytes()
        raw = tomllib.loads(payload.decode("utf-8-sig"))
    except FileNotFoundError:
        raise DataError(f"--public-schema: file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise DataError(f"--public-schema: {path} is not a readable TOML file ({_short(error)}); fix it") from None
    ranges, vocabularies = raw.get("ranges", {}), raw.get("categories", {})
    may_be_missing = raw.get("may-be-missing", [])
    unknown = sorted(set(raw) - {"ranges", "categories", "may-be-missing"})
    if unknown:
        raise DataError(f"--public-schema: {path} has an unknown key {unknown[0]!r}; use [ranges], [categories] "
                        "and may-be-missing")
    numeric = [column for column in features.columns if column not in categorical]
    for column in numeric:
        bounds = ranges.get(column)
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)
                and all(np.isfinite(bounds)) and bounds[0] < bounds[1]):
            raise DataError(f"--public-schema: numeric column {column!r} needs a range {column} = [LOW, HIGH] with "
                            f"LOW < HIGH under [ranges] in {path}")
    for column in categorical:
        values = vocabularies.get(column)
        if not (isinstance(values, list) and values and all(isinstance(v, (str, int, float)) for v in values)):
            raise DataError(f"--public-schema: categorical column {column!r} needs its categories under "
                            f"[categories] in {path}, as {column} = [\"a\", \"b\"]")
    extra = sorted((set(ranges) | set(vocabularies) | set(may_be_missing)) - set(features.columns))
    if extra:
        raise DataError(f"--public-schema: {path} names {extra[0]!r}, which is not a feature column of the data")
    schema = PublicSchema(
        {column: (float(ranges[column][0]), float(ranges[column][1])) for column in numeric},
        {column: tuple(str(v) for v in vocabularies[column]) for column in categorical},
        tuple(str(column) for column in may_be_missing),
        source=f"the public bounds and categories given in {path.name}",
    )
    return schema, payload


def target_rule(source: DataSource) -> str:
    """How the target column becomes 0/1, in words."""
    if source.positive:
        return f"positive = {source.target} is {source.positive!r}"
    if source.positive_above is not None:
        return f"positive = {source.target} > {source.positive_above:g}"
    return f"positive = {source.target} is 1"


def public_schema_for(path: Path, schema: Schema) -> PublicSchema:
    """The public schema file checked against the columns the sites reported (a deployment's server has no rows)."""
    columns = pd.DataFrame(columns=[*schema.numeric, *schema.categorical])
    return read_public_schema(path, columns, list(schema.categorical))[0]


def _short(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _read_bytes(path: Path) -> bytes:
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"--data: file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise DataError(f"--data: {path} is a folder; give the CSV file inside it") from None
    except OSError as error:
        raise DataError(f"--data: cannot read {path} ({error.strerror}); check its permissions") from None
    if not payload.strip():
        raise DataError(f"--data: {path} is empty; give a CSV with a header row and one row per patient")
    if b"\x00" in payload[:65536]:
        raise DataError(f"--data: {path} is not a CSV text file (it holds binary data); export the table as CSV")
    return payload


def _parse(path: Path, payload: bytes) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each row's line in the file (blank lines skipped)."""
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"--data: {path} is not UTF-8 text (byte {payload[error.start]:#04x} at position "
                        f"{error.start}); save it as CSV with UTF-8 encoding") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise DataError(f"--data: {path} is not a valid CSV ({error}); check its quoting") from None
    if not lines:
        raise DataError(f"--data: {path} holds no values; give a CSV with a header row and one row per patient")
    header = [name.strip() for name in lines[0][1]]
    if len(header) < 2:
        raise DataError(f"--data: {path} has a single column ({header[0][:40]!r}); separate columns with commas")
    if any(not name for name in header):
        raise DataError(f"--data: {path} has a column without a name (column {header.index('') + 1}); name it")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"--data: {path} has duplicate column names ({', '.join(map(repr, duplicates))}); rename them")
    if len(lines) < 2:
        raise DataError(f"--data: {path} has a header but no data rows; add one row per patient")
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise DataError(f"--data: {path} line {number} has {len(row)} fields but the header has {len(header)}; "
                            "fix that line")
    return header, [row for _, row in lines[1:]], [number for number, _ in lines[1:]]


def _binary_target(path: Path, table: pd.DataFrame, missing: pd.DataFrame, source: DataSource,
                   one_site: bool) -> tuple[np.ndarray, str]:
    column = source.target
    if column not in table.columns:
        raise DataError(f"--target: column {column!r} is not in {path}; columns are {_names(table.columns)}")
    if missing[column].any():
        raise DataError(f"--target: column {column!r} is empty on line {_first_line(missing[column])}; fill in the "
                        "outcome or remove those rows")
    values = table[column].str.strip()
    if source.positive:
        if not (values == source.positive).any():
            raise DataError(f"--positive: {source.positive!r} never occurs in column {column!r} (values: "
                            f"{_names(sorted(values.unique()))}); give one of those")
        target = values == source.positive
    elif source.positive_above is not None:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any():
            line = _first_line(numbers.isna())
            raise DataError(f"--positive-above: column {column!r} is not numeric (line {line}: "
                            f"{values[numbers.isna()].iloc[0][:40]!r}); use --positive VALUE instead")
        target = numbers > source.positive_above
    else:
        codes = values.str.lower().map(_TRUE_FALSE)
        if codes.isna().any():
            raise DataError(f"--target: column {column!r} is not coded 0/1 (values: {_names(sorted(values.unique()))}); "
                            "say which value is positive with --positive VALUE or --positive-above NUMBER")
        target = codes == 1
    target, rule = target.to_numpy(dtype=np.int64), target_rule(source)
    if target.min() == target.max() and not one_site:
        which = "positive" if target[0] else "negative"
        raise DataError(f"--target: every row of {path} is {which} under the rule '{rule}'; the study needs both "
                        "classes: check --target, --positive or --positive-above")
    return target, rule


def _site_labels(path: Path, table: pd.DataFrame, missing: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table.columns:
        raise DataError(f"--site-column: column {column!r} is not in {path}; columns are {_names(table.columns)}")
    if missing[column].any():
        raise DataError(f"--site-column: column {column!r} is empty on line {_first_line(missing[column])}; "
                        "name the site of every row")
    labels = table[column].str.strip().to_numpy(dtype=object)
    names, counts = np.unique(labels, return_counts=True)
    if len(names) < 2:
        raise DataError(f"--site-column: column {column!r} names a single site ({names[0]!r}); a federation needs at "
                        "least 2, or leave out --site-column to simulate sites")
    if counts.min() < MIN_ROWS_PER_SITE:
        small = names[np.argmin(counts)]
        raise DataError(f"--site-column: site {small!r} has {counts.min()} row; every site needs at least "
                        f"{MIN_ROWS_PER_SITE} (one to train on, one to test on): add rows or merge it with another")
    return labels


def _features(path: Path, table: pd.DataFrame, missing: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Numeric columns as floats (NaN missing) and the rest as categories (None missing)."""
    features, categorical = {}, []
    for column in table.columns:
        filled = ~missing[column]
        if not filled.any():
            raise DataError(f"--data: column {column!r} of {path} is empty in every row; remove it")
        cells = table[column].str.strip()
        numbers = pd.to_numeric(cells.where(filled), errors="coerce")
        parsed = numbers.notna() & filled
        if parsed.sum() >= NUMERIC_SHARE * filled.sum():
            junk = filled & ~parsed
            if junk.any():
                raise DataError(f"--data: column {column!r} of {path} is numeric but line {_first_line(junk)} holds "
                                f"{cells[junk].iloc[0][:40]!r}; fix the value or leave the cell empty")
            infinite = np.isinf(numbers.to_numpy(dtype=np.float64))
            if infinite.any():
                raise DataError(f"--data: column {column!r} of {path} holds an infinite value on line "
                                f"{_first_line(pd.Series(infinite, index=numbers.index))}; replace it or leave the "
                                "cell empty")
            huge = np.abs(numbers.to_numpy(dtype=np.float64)) > MAX_MAGNITUDE
            if huge.any():
                line = _first_line(pd.Series(huge, index=numbers.index))
                raise DataError(f"--data: column {column!r} of {path} holds {cells[huge].iloc[0][:40]!r} on line {line}, "
                                f"beyond ±{MAX_MAGNITUDE:.0e}, too large to standardize; check its unit or the value")
            features[column] = numbers.astype(np.float64)
        else:
            features[column] = cells.where(filled, None).astype(object)
            categorical.append(column)
    return pd.DataFrame(features).reset_index(drop=True), categorical


def _first_line(mask: pd.Series) -> int:
    """The file line of the first row where mask holds (rows are indexed by their line)."""
    return int(mask.index[np.argmax(mask.to_numpy())])


def _names(values) -> str:
    shown = [repr(str(value)[:40]) for value in list(values)[:8]]
    return ", ".join(shown) + (", ..." if len(values) > 8 else "")
