with

features as (

    select * from {{ ref('int_customer_features_at_cutoffs') }}

),

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

customer_days as (

    select * from {{ ref('int_customer_days') }}

),

training_features as (

    select
        features.customer_id,
        features.cutoff_date,
        features.frequency,
        features.recency,
        features.T,
        features.monetary_value,
        features.orders_30d,
        features.orders_90d,
        features.orders_365d,
        features.spend_30d,
        features.spend_90d,
        features.spend_365d,
        features.sessions_90d,
        features.add_to_cart_90d,
        features.tenure_days,
        features.country,
        features.acquisition_channel,
        features.first_purchase_date,
        features.last_purchase_date,
        cutoffs.horizon_days,
        cutoffs.horizon_end_date

    from features
    inner join cutoffs
        on features.cutoff_date = cutoffs.cutoff_date
    where cutoffs.is_training

),

-- Label window [cutoff_date, horizon_end_date): the cutoff day counts, the end day does not.
future_activity as (

    select
        training_features.customer_id,
        training_features.cutoff_date,
        sum(customer_days.net_value) as future_net_value,
        count(case when customer_days.is_purchase_day then customer_days.activity_date end) as future_purchase_days

    from training_features
    inner join customer_days
        on
            customer_days.customer_id = training_features.customer_id
            and customer_days.activity_date >= training_features.cutoff_date
            and customer_days.activity_date < training_features.horizon_end_date
    group by
        training_features.customer_id,
        training_features.cutoff_date

),

final as (

    select
        training_features.customer_id,
        training_features.cutoff_date,
        training_features.frequency,
        training_features.recency,
        training_features.T,
        training_features.monetary_value,
        training_features.orders_30d,
        training_features.orders_90d,
        training_features.orders_365d,
        training_features.spend_30d,
        training_features.spend_90d,
        training_features.spend_365d,
        training_features.sessions_90d,
        training_features.add_to_cart_90d,
        training_features.tenure_days,
        training_features.country,
        training_features.acquisition_channel,
        training_features.first_purchase_date,
        training_features.last_purchase_date,
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
