{#
    The recent window, in days: the behaviour features (sessions, page views, searches, cart events),
    spend_share and the numerator of the trend ratios read [cutoff - N days, cutoff).
    int_customer_session_days keeps events from this many days before the earliest cutoff on, so the
    two must agree: both read it from here.
#}
{% macro recent_window_days() -%}
    {{ return(90) }}
{%- endmacro %}
