{#
    Validated run-time parameters. Each raises a compiler error naming the var and the rule broken,
    so a bad --vars value fails before any SQL runs.
#}
{% macro non_negative_int_var(name) -%}
    {%- set raw_value = var(name) -%}
    {%- if raw_value is none or (raw_value | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' is required (a whole number of days or a count)") }}
    {%- endif -%}
    {%- set value = raw_value | string | trim | int(-1) -%}
    {%- if value | string != raw_value | string | trim or value < 0 -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a non-negative whole number, got '" ~ raw_value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#
    var('cutoff_date') as an ISO date string, or none when unset ('' or null), meaning
    "the day after the latest invoice".
#}
{% macro cutoff_date_var() -%}
    {%- set raw_value = var('cutoff_date') -%}
    {%- if raw_value is none or (raw_value | string | trim) in ('', 'None', 'null') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = raw_value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error(
            "var 'cutoff_date' must be an ISO date YYYY-MM-DD (a midnight cutoff), got '" ~ text ~ "'"
        ) }}
    {%- endif -%}
    {%- set year, month, day = text.split('-') | map('int') | list -%}
    {%- set first_of_next_month = modules.datetime.date(year + (month // 12), month % 12 + 1, 1) if 1 <= month <= 12 else none -%}
    {%- if first_of_next_month is none or day < 1 or day > (first_of_next_month - modules.datetime.timedelta(days=1)).day -%}
        {{ exceptions.raise_compiler_error("var 'cutoff_date' is not a calendar date: '" ~ text ~ "'") }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{#
    var('order_value_cap_quantile') as a float in (0, 1], or none when unset ('' or null), which
    disables capping order values.
#}
{% macro order_value_cap_quantile_var() -%}
    {%- set raw_value = var('order_value_cap_quantile', none) -%}
    {%- if raw_value is none or (raw_value | string | trim) in ('', 'None', 'null', 'none') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set value = raw_value | string | trim | float(-1.0) -%}
    {%- if not (0 < value <= 1) -%}
        {{ exceptions.raise_compiler_error(
            "var 'order_value_cap_quantile' must be a number in (0, 1] or null, got '" ~ raw_value ~ "'"
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
