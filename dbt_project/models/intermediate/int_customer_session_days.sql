{{ config(**daily_incremental_config()) }}

with

events as (

    select * from {{ ref('stg_shop__behavioral_events') }}
    {{ daily_incremental_filter('occurred_at') }}

),

-- Events of known customers; anonymous ones can never be attributed to a customer's features.
customer_events as (

    select
        customer_id,
        session_id,
        cast(occurred_at as date) as activity_date,
        event_type,
        occurred_at

    from events
    where customer_id is not null

),

final as (

    select
        customer_id,
        session_id,
        activity_date,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at,
        cast(count(*) as bigint) as events,
        cast(count(case when event_type = 'page_view' then 1 end) as bigint) as page_views,
        cast(count(case when event_type = 'search' then 1 end) as bigint) as searches,
        cast(count(case when event_type = 'add_to_cart' then 1 end) as bigint) as add_to_cart

    from customer_events
    group by
        customer_id,
        session_id,
        activity_date

)

select * from final
