{#
    The daily per-customer aggregates (int_customer_days, int_customer_product_days) are
    incremental by day: a run rebuilds only the days from var('incremental_lookback_days') before
    the latest day already built onwards, and replaces those days whole. A --full-refresh rebuilds
    everything (needed when lines older than the lookback change).

    One definition, two engines: DuckDB deletes the rebuilt days and inserts them again
    (delete+insert keyed on activity_date); dbt-spark's default parquet tables cannot merge, so
    Spark partitions by activity_date and overwrites the rebuilt partitions (insert_overwrite with
    dynamic partition overwrite, which dbt-spark switches on when partition_by is set).
#}
{% macro daily_incremental_config() -%}
    {%- if target.type == 'spark' -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': ['activity_date'],
            'on_schema_change': 'fail',
        }) }}
    {%- else -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'delete+insert',
            'unique_key': 'activity_date',
            'on_schema_change': 'fail',
        }) }}
    {%- endif -%}
{%- endmacro %}

{#
    The where clause that keeps only the days an incremental run rebuilds (nothing on a full build).
#}
{% macro daily_incremental_filter(date_column) -%}
    {%- if is_incremental() -%}
    where {{ date_column }} >= (
        select cast({{ dbt.dateadd('day', -non_negative_int_var('incremental_lookback_days'), 'max(activity_date)') }} as date)
        from {{ this }}
    )
    {%- endif -%}
{%- endmacro %}
