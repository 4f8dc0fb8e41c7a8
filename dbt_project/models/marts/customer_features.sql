with

features as (

    select * from {{ ref('int_customer_features_at_cutoffs') }}

),

final as (

    select
        customer_id,
        cutoff_date,
        {%- for column in customer_feature_columns() %}
        {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}

    from features
    where cutoff_kind = 'scoring'

)

select * from final
