with

features as (

    select * from {{ ref('int_customer_features_at_cutoffs') }}

),

final as (

    select
        customer_id,
        cutoff_date,
        frequency,
        recency,
        T,
        monetary_value,
        orders_30d,
        orders_90d,
        orders_365d,
        spend_30d,
        spend_90d,
        spend_365d,
        sessions_90d,
        add_to_cart_90d,
        tenure_days,
        country,
        acquisition_channel,
        first_purchase_date,
        last_purchase_date

    from features
    where cutoff_kind = 'scoring'

)

select * from final
