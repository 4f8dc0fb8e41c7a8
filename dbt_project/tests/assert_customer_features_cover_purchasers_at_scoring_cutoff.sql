{{ config(meta={'dagster': {'ref': {'name': 'customer_features'}}}) }}

-- customer_features holds exactly the customers with a purchase day before the scoring cutoff,
-- each at that cutoff. Returns the offending customers with the problem found.
with

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

customer_days as (

    select * from {{ ref('int_customer_days') }}

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

scoring_cutoff as (

    select cutoff_date
    from cutoffs
    where cutoff_kind = 'scoring'

),

purchasers as (

    select distinct customer_days.customer_id
    from customer_days
    inner join scoring_cutoff
        on customer_days.activity_date < scoring_cutoff.cutoff_date
    where customer_days.is_purchase_day

),

missing as (

    select
        purchasers.customer_id,
        'purchased before the scoring cutoff but has no row' as problem
    from purchasers
    left join customer_features
        on customer_features.customer_id = purchasers.customer_id
    where customer_features.customer_id is null

),

unexpected as (

    select
        customer_features.customer_id,
        'has a row but no purchase before the scoring cutoff' as problem
    from customer_features
    left join purchasers
        on purchasers.customer_id = customer_features.customer_id
    where purchasers.customer_id is null

),

wrong_cutoff as (

    select
        customer_features.customer_id,
        'cutoff_date is not the scoring cutoff' as problem
    from customer_features
    left join scoring_cutoff
        on scoring_cutoff.cutoff_date = customer_features.cutoff_date
    where scoring_cutoff.cutoff_date is null

),

final as (

    select customer_id, problem from missing
    union all
    select customer_id, problem from unexpected
    union all
    select customer_id, problem from wrong_cutoff

)

select * from final
