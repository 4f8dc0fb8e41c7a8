{#
    The daily incremental models (int_transaction_lines, int_customer_days,
    int_customer_session_days) are incremental by day: a run rebuilds
    only the days from var('incremental_lookback_days') before the latest day already built
    onwards, and replaces those days whole. A --full-refresh rebuilds everything (needed when rows
    older than the lookback change). `date_column` names the model's day column.

    One definition, two engines: DuckDB deletes the rebuilt days and inserts them again
    (delete+insert keyed on the day); dbt-spark's default parquet tables cannot merge, so Spark
    partitions by the day and overwrites the rebuilt partitions (insert_overwrite with dynamic
    partition overwrite, which dbt-spark switches on when partition_by is set).
#}
{% macro daily_incremental_config(date_column='activity_date') -%}
    {%- if target.type == 'spark' -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': [date_column],
            'on_schema_change': 'fail',
        }) }}
    {%- else -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'delete+insert',
            'unique_key': date_column,
            'on_schema_change': 'fail',
        }) }}
    {%- endif -%}
{%- endmacro %}

{#
    The where clause that keeps only the days an incremental run rebuilds (nothing on a full build):
    `source_date_expression` is the day of an upstream row, `built_date_column` the model's own day
    column. The first day rebuilt is read when the model runs and written into the SQL as a date
    literal, so the filter can reach below the staging view's DISTINCT into the table scan, where a
    scalar subquery would be joined after every raw line had been deduplicated. DuckDB 2.0 pushes
    `invoiced_at >= date` through the view's CTEs but not `cast(invoiced_at as date) >= date`: pass
    the timestamp itself where there is one (the two keep the same rows). An empty table rebuilds
    every day.

    `needed_from`, when given, is a query returning the first day the model must hold (one row, one
    DATE column; NULL when there is nothing to build): older rows are left out of a full build, and
    an incremental run also builds the days from it up to the first day the table holds when it
    starts earlier than before (more or earlier cutoffs), so the table never lacks a day it is read
    for. It is a scalar subquery on a full build: with no DISTINCT above the source, DuckDB filters
    before aggregating all the same.
#}
{% macro daily_incremental_filter(source_date_expression, built_date_column='activity_date', needed_from=none) -%}
    {#- first_day: the first day rebuilt (none on a full build or an empty table); first_built_day: the
        first day the table holds; first_needed_day: the value of needed_from. -#}
    {%- set first_day, first_built_day, first_needed_day = none, none, none -%}
    {%- if is_incremental() and execute -%}
        {%- set bounds_query -%}
            select
                cast(cast({{ dbt.dateadd('day', -non_negative_int_var('incremental_lookback_days'), 'max(' ~ built_date_column ~ ')') }} as date) as {{ dbt.type_string() }}),
                cast(min({{ built_date_column }}) as {{ dbt.type_string() }}),
                {% if needed_from is none -%} cast(null as {{ dbt.type_string() }}) {%- else -%} cast(({{ needed_from }}) as {{ dbt.type_string() }}) {%- endif %}
            from {{ this }}
        {%- endset -%}
        {%- set first_day, first_built_day, first_needed_day = run_query(bounds_query).rows[0] -%}
    {%- endif -%}
    {%- if first_day is not none and first_needed_day is not none and first_needed_day < first_built_day %}
    where {{ source_date_expression }} >= cast('{{ first_day }}' as date)
        or ({{ source_date_expression }} >= cast('{{ first_needed_day }}' as date)
            and {{ source_date_expression }} < cast('{{ first_built_day }}' as date))
    {%- elif first_day is not none %}
    where {{ source_date_expression }} >= cast('{{ first_day }}' as date)
    {%- elif needed_from is not none %}
    where {{ source_date_expression }} >= ({{ needed_from }})
    {%- endif -%}
{%- endmacro %}
