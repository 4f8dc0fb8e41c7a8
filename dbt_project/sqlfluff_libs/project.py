"""The ``vars:`` defaults of dbt_project.yml, which the lint-only ``var`` macro (sqlfluff_macros/var.sql) returns."""

from pathlib import Path

import yaml

vars = yaml.safe_load((Path(__file__).resolve().parents[1] / "dbt_project.yml").read_text())["vars"]
