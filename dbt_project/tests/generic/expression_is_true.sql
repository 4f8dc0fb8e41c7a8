{#
    Rows for which the SQL boolean expression is false. A NULL result passes, as in a CHECK
    constraint.
#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
