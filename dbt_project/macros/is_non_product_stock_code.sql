{#
    True when the stock code is a fee, postage, discount, adjustment or voucher rather than a
    product: listed in var('non_product_stock_codes') or starting with GIFT (case-insensitive).
    A NULL stock code (a log without product codes) is a product line: false, never NULL.
#}
{% macro is_non_product_stock_code(column_name) -%}
    coalesce(
        upper({{ column_name }}) in (
            {%- for code in var('non_product_stock_codes') -%}
                '{{ code | upper }}'{% if not loop.last %}, {% endif %}
            {%- endfor -%}
        )
        or upper({{ column_name }}) like 'GIFT%',
        false
    )
{%- endmacro %}
