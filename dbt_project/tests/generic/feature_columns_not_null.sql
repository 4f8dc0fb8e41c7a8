{#
    Rows where any column of customer_feature_columns() is NULL: one query instead of a not_null
    test per feature. The model must carry every one of those columns.
#}
{% test feature_columns_not_null(model) %}

select *
from {{ model }}
where
    1 = 0
    {%- for column in customer_feature_columns() %}
    or {{ column }} is null
    {%- endfor %}

{% endtest %}
