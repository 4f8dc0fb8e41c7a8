{#
    Combinations of the given columns that occur more than once: the uniqueness half of a
    composite primary key (pair with not_null on each column).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(',\n    ') }},
    count(*) as duplicate_rows
from {{ model }}
group by
    {{ combination_of_columns | join(',\n    ') }}
having count(*) > 1

{% endtest %}
