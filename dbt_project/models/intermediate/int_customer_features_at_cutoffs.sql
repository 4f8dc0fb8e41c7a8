{#- Trailing windows, in days, for the orders_<N>d / spend_<N>d features. -#}
{%- set spend_windows_days = [30, 90, 365] -%}
{%- set event_window_days = 90 -%}

with

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

customer_days as (

    select * from {{ ref('int_customer_days') }}

),

events as (

    select * from {{ ref('stg_shop__behavioral_events') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

-- Every window is [cutoff - N days, cutoff): start included, cutoff excluded.
cutoff_windows as (

    select
        cutoff_date,
        cutoff_at,
        cutoff_kind,
        {%- for days in spend_windows_days %}
        cast({{ dbt.dateadd('day', -days, 'cutoff_date') }} as date) as window_{{ days }}d_start_date,
        {%- endfor %}
        cast({{ dbt.dateadd('day', -event_window_days, 'cutoff_date') }} as timestamp) as event_window_start_at

    from cutoffs

),

-- Point-in-time rule: only days strictly before the cutoff date (that is, before its midnight).
history as (

    select
        cutoff_windows.cutoff_date,
        {%- for days in spend_windows_days %}
        cutoff_windows.window_{{ days }}d_start_date,
        {%- endfor %}
        customer_days.customer_id,
        customer_days.activity_date,
        customer_days.is_purchase_day,
        customer_days.orders,
        customer_days.gross_purchase_value,
        customer_days.net_value

    from cutoff_windows
    inner join customer_days
        on customer_days.activity_date < cutoff_windows.cutoff_date

),

history_summary as (

    select
        customer_id,
        cutoff_date,
        count(case when is_purchase_day then activity_date end) as purchase_days,
        min(case when is_purchase_day then activity_date end) as first_purchase_date,
        max(case when is_purchase_day then activity_date end) as last_purchase_date,
        sum(case when is_purchase_day then gross_purchase_value else 0 end) as total_purchase_value,
        {%- for days in spend_windows_days %}
        sum(case when activity_date >= window_{{ days }}d_start_date then orders else 0 end) as orders_{{ days }}d,
        sum(case when activity_date >= window_{{ days }}d_start_date then net_value else 0 end) as spend_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from history
    group by
        customer_id,
        cutoff_date

),

-- A customer exists at a cutoff once they have purchased before it.
purchasers as (

    select
        history_summary.customer_id,
        history_summary.cutoff_date,
        history_summary.purchase_days,
        history_summary.first_purchase_date,
        history_summary.last_purchase_date,
        history_summary.total_purchase_value,
        first_day.gross_purchase_value as first_purchase_value,
        last_day.country as last_purchase_country,
        {%- for days in spend_windows_days %}
        history_summary.orders_{{ days }}d,
        history_summary.spend_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from history_summary
    inner join customer_days as first_day
        on
            first_day.customer_id = history_summary.customer_id
            and first_day.activity_date = history_summary.first_purchase_date
    inner join customer_days as last_day
        on
            last_day.customer_id = history_summary.customer_id
            and last_day.activity_date = history_summary.last_purchase_date
    where history_summary.purchase_days > 0

),

event_summary as (

    select
        events.customer_id,
        cutoff_windows.cutoff_date,
        count(distinct events.session_id) as sessions_{{ event_window_days }}d,
        count(case when events.event_type = 'add_to_cart' then events.event_id end) as add_to_cart_{{ event_window_days }}d

    from cutoff_windows
    inner join events
        on
            events.occurred_at >= cutoff_windows.event_window_start_at
            and events.occurred_at < cutoff_windows.cutoff_at
    group by
        events.customer_id,
        cutoff_windows.cutoff_date

),

final as (

    select
        purchasers.customer_id,
        purchasers.cutoff_date,
        cutoffs.cutoff_kind,

        ---------- BTYD summary (pymc-marketing rfm_summary definitions, daily periods)
        cast(purchasers.purchase_days - 1 as bigint) as frequency,
        cast({{ dbt.datediff('purchasers.first_purchase_date', 'purchasers.last_purchase_date', 'day') }} as bigint) as recency,
        cast({{ dbt.datediff('purchasers.first_purchase_date', 'purchasers.cutoff_date', 'day') }} as bigint) as T,
        case
            when purchasers.purchase_days > 1
                then cast(
                    (purchasers.total_purchase_value - purchasers.first_purchase_value)
                    / (purchasers.purchase_days - 1)
                    as double
                )
            else cast(0 as double)
        end as monetary_value,

        ---------- trailing windows
        {%- for days in spend_windows_days %}
        cast(purchasers.orders_{{ days }}d as bigint) as orders_{{ days }}d,
        {%- endfor %}
        {%- for days in spend_windows_days %}
        cast(purchasers.spend_{{ days }}d as double) as spend_{{ days }}d,
        {%- endfor %}
        cast(coalesce(event_summary.sessions_{{ event_window_days }}d, 0) as bigint) as sessions_{{ event_window_days }}d,
        cast(coalesce(event_summary.add_to_cart_{{ event_window_days }}d, 0) as bigint) as add_to_cart_{{ event_window_days }}d,

        ---------- customer attributes
        -- Tenure starts at signup, or at the first purchase when that is earlier or the customer
        -- is not in raw.customers: a signup dated after the first purchase (or the cutoff) is ignored.
        cast({{ dbt.datediff(
            '(case when customers.signup_date < purchasers.first_purchase_date
                then customers.signup_date else purchasers.first_purchase_date end)',
            'purchasers.cutoff_date',
            'day'
        ) }} as bigint) as tenure_days,
        coalesce(customers.country, purchasers.last_purchase_country) as country,
        coalesce(customers.acquisition_channel, 'unknown') as acquisition_channel,

        ---------- dates
        purchasers.first_purchase_date,
        purchasers.last_purchase_date

    from purchasers
    inner join cutoffs
        on purchasers.cutoff_date = cutoffs.cutoff_date
    left join event_summary
        on
            event_summary.customer_id = purchasers.customer_id
            and event_summary.cutoff_date = purchasers.cutoff_date
    left join customers
        on customers.customer_id = purchasers.customer_id

)

select * from final
