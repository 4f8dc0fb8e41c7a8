{#
    Order value capping (var order_value_cap_quantile, int_order_value_caps).

    The capped "order" is a purchase day: the customer's purchase lines of one calendar day
    (int_customer_days.gross_purchase_value), the BTYD unit of frequency and monetary_value. A
    day's cancelled value is capped at the same size (at most the cap is taken back), so cancelling
    a capped order takes back no more than was counted. A NULL cap leaves values unchanged.

    The values are DECIMAL(18, 4) and the cap a DOUBLE (an interpolated quantile): a capped value
    is the cap as DECIMAL(24, 10), so the capped values stay exact decimals whose sums do not depend
    on the summation order, and the cap is kept to 1e-10 (not rounded to the values' 4 places).
#}
{% macro capped_purchase_value(value, cap) -%}
    case when {{ cap }} is not null and {{ value }} > {{ cap }} then {{ cap_as_decimal(cap) }} else {{ value }} end
{%- endmacro %}

{% macro capped_cancelled_value(value, cap) -%}
    case when {{ cap }} is not null and {{ value }} < -{{ cap }} then -{{ cap_as_decimal(cap) }} else {{ value }} end
{%- endmacro %}

{% macro cap_as_decimal(cap) -%}
    cast({{ cap }} as decimal(24, 10))
{%- endmacro %}

{#
    The columns gross_purchase_value, cancelled_value and net_value of the int_customer_days
    relation `days` with the cap applied: net value = capped purchases + capped cancellations +
    the day's other product lines (free lines, adjustments), which are not capped.
#}
{% macro capped_day_values(days, cap) -%}
    {%- set gross = capped_purchase_value(days ~ '.gross_purchase_value', cap) -%}
    {%- set cancelled = capped_cancelled_value(days ~ '.cancelled_value', cap) -%}
    {{ gross }} as gross_purchase_value,
    {{ cancelled }} as cancelled_value,
    {{ days }}.net_value - {{ days }}.gross_purchase_value - {{ days }}.cancelled_value
        + {{ gross }} + {{ cancelled }} as net_value
{%- endmacro %}
