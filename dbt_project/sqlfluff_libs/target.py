"""dbt's ``target`` as sqlfluff sees it when it lints the models: the local DuckDB target."""

type = "duckdb"
schema = "main"
name = "duckdb"
