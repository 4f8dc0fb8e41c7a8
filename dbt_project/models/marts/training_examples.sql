with

features as (

    select * from {{ ref('int_customer_features_at_cutoffs') }}

),

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

order_value_caps as (

    select * from {{ ref('int_order_value_caps') }}

),

customer_days as (

    select * from {{ ref('int_customer_days') }}

),

training_features as (

    select
        features.customer_id,
        features.cutoff_date,
        {%- for column in customer_feature_columns() %}
        features.{{ column }},
        {%- endfor %}
        cutoffs.horizon_days,
        cutoffs.horizon_end_date,
        order_value_caps.cap_value

    from features
    inner join cutoffs
        on features.cutoff_date = cutoffs.cutoff_date
    left join order_value_caps
        on order_value_caps.cutoff_date = cutoffs.cutoff_date
    where cutoffs.is_training

),

-- Label window [cutoff_date, horizon_end_date): the cutoff day counts, the end day does not.
-- Order values are capped at the cutoff's cap, as in the features.
label_days as (

    select
        training_features.customer_id,
        training_features.cutoff_date,
        customer_days.is_purchase_day,
        customer_days.activity_date,
        {{ capped_day_values('customer_days', 'training_features.cap_value') }}

    from training_features
    inner join customer_days
        on
            customer_days.customer_id = training_features.customer_id
            and customer_days.activity_date >= training_features.cutoff_date
            and customer_days.activity_date < training_features.horizon_end_date

),

future_activity as (

    select
        customer_id,
        cutoff_date,
        -- The exact DECIMAL sum (the same in any summation order), as DOUBLE once summed.
        cast(sum(net_value) as double) as future_net_value,
        count(case when is_purchase_day then activity_date end) as future_purchase_days

    from label_days
    group by
        customer_id,
        cutoff_date

),

final as (

    select
        training_features.customer_id,
        training_features.cutoff_date,
        {%- for column in customer_feature_columns() %}
        training_features.{{ column }},
        {%- endfor %}
        training_features.horizon_days,
        cast(
            case
                when future_activity.future_net_value > 0 then future_activity.future_net_value
                else 0
            end
            as double
        ) as future_revenue,
        cast(coalesce(future_activity.future_purchase_days, 0) as bigint) as future_purchase_days

    from training_features
    left join future_activity
        on
            future_activity.customer_id = training_features.customer_id
            and future_activity.cutoff_date = training_features.cutoff_date

)

select * from final
