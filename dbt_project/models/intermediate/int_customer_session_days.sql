{{ config(**daily_incremental_config()) }}

{#- Only the days some cutoff's recent window reads: a scoring build reads 90 days of events, not
    years of them (the costliest step of a full build at 50M events). -#}
{%- set needed_from -%}
    select cast({{ dbt.dateadd('day', -recent_window_days(), 'min(cutoff_date)') }} as date) from {{ ref('int_cutoffs') }}
{%- endset %}

with

events as (

    select * from {{ ref('stg_shop__behavioral_events') }}
    {{ daily_incremental_filter('occurred_at', needed_from=needed_from) }}

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
