{#
    A hash of the given columns, NULL-safe: the local stand-in for dbt_utils.generate_surrogate_key
    (no packages are installed). Built from dbt's cross-database hash, concat and type macros.
#}
{% macro surrogate_key(column_names) -%}
    {%- set fields = [] -%}
    {%- for column_name in column_names -%}
        {%- do fields.append("coalesce(cast(" ~ column_name ~ " as " ~ dbt.type_string() ~ "), '_null_')") -%}
        {%- if not loop.last -%}
            {%- do fields.append("'|'") -%}
        {%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(fields)) }}
{%- endmacro %}
