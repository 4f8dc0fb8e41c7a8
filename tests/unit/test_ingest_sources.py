"""Sources by name and by path: the UCI presets, folders and globs, the YAML spec file."""

from datetime import date, datetime

import pytest

from clv_platform.ingest.readers import SourceError, iter_source, list_files
from clv_platform.ingest.spec import PiiSpec, RuleLimits, SourceSpec, load_spec
from clv_platform.ingest.validate import TRANSACTIONS, validate

RETAIL_II = """\
Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country
489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom
C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia
"""


def _load(spec: SourceSpec):
    return validate(
        list(iter_source(spec)), TRANSACTIONS, spec, RuleLimits(), PiiSpec(), None, datetime(2026, 1, 1), date(2000, 1, 1)
    )


def test_online_retail_ii_loads_by_name(tmp_path):
    (tmp_path / "retail_ii.csv").write_text(RETAIL_II)
    loaded = _load(SourceSpec(kind="files", path=str(tmp_path / "retail_ii.csv"), preset="online_retail_ii"))
    assert loaded.rows_read == 2 and loaded.quarantine.empty
    rows = loaded.accepted.set_index("invoice_no")
    # 'Customer ID' as the spreadsheet export writes it (13085.0) becomes the id 13085.
    assert rows.loc["489434", ["customer_id", "quantity", "unit_price"]].tolist() == ["13085", 12, 6.95]
    assert rows.loc["C489449", "quantity"] == -12


def test_folders_and_globs_pick_data_files_in_order(tmp_path):
    for name in ("b.csv", "a.csv.gz", "c.parquet", "notes.md"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_bytes(b"")
    assert [p.name for p in list_files(str(tmp_path))] == ["a.csv.gz", "b.csv", "c.parquet"]
    assert [p.name for p in list_files(str(tmp_path / "*.csv"))] == ["b.csv"]
    assert [p.name for p in list_files(str(tmp_path / "**" / "*.csv"))] == ["b.csv", "d.csv"]
    with pytest.raises(SourceError, match=r"no such file or folder \(rule: input_present\)"):
        list_files(str(tmp_path / "missing"))


def test_spec_file_resolves_relative_paths_and_rejects_unknown_keys(tmp_path):
    (tmp_path / "source.yaml").write_text("transactions: {kind: files, path: data/*.csv, preset: online_retail}\n")
    spec = load_spec(tmp_path / "source.yaml")
    assert spec.transactions.path == str(tmp_path / "data" / "*.csv")
    assert spec.behavioral_events is None and not spec.is_generated
    (tmp_path / "bad.yaml").write_text("transactions: {kind: files, path: x.csv, delimeter: ';'}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: invalid source config: line 1: unknown key 'delimeter' in 'transactions'"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "bad_mapping.yaml").write_text("transactions: {kind: files, path: x.csv, columns: {customer: c}}\n")
    with pytest.raises(
        ValueError, match=r"bad_mapping.yaml: invalid source config: line 1: transactions: unknown canonical column"
    ):
        load_spec(tmp_path / "bad_mapping.yaml")
    with pytest.raises(ValueError, match="unknown canonical column"):
        SourceSpec(kind="files", path="x.csv", columns={"customer": "c"}).mapping(TRANSACTIONS.fields)


def test_generator_is_the_default_source(monkeypatch):
    monkeypatch.delenv("CLV_SOURCE_CONFIG", raising=False)
    spec = load_spec()
    assert spec.is_generated and spec.behavioral_events.kind == "generator"
