"""What sqlfluff renders for dbt's cross-database macros when it lints the models: the SQL dbt-duckdb emits.

Lint only (dbt_project/.sqlfluff library_path); dbt itself uses its own macros.
"""


def datediff(first_date, second_date, datepart):
    return f"(date_diff('{datepart}', {first_date}::timestamp, {second_date}::timestamp))"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"({from_date_or_timestamp} + cast({interval} as bigint) * interval 1 {datepart})"


def type_string():
    return "varchar"


def concat(fields):
    return " || ".join(fields)


def hash(field):
    return f"md5(cast({field} as varchar))"
