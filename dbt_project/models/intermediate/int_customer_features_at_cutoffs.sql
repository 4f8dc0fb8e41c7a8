{#- Trailing windows, in days, of the orders / spend / items / distinct products features. -#}
{%- set windows_days = [30, 90, 365] -%}
{#- The window of the behaviour features and of spend_share; the two windows of the trend ratios. -#}
{%- set recent_days = recent_window_days() -%}
{%- set trend_long_days = 365 -%}

with

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

order_value_caps as (

    select * from {{ ref('int_order_value_caps') }}

),

-- customer_days and transaction_lines are each read twice below. DuckDB materializes such a CTE, and
-- a materialized CTE spills to disk: reading the table once per reader instead was 0.5-0.8 s faster at
-- one cutoff but ran out of memory under the 3GB limit at 10M lines and 5 cutoffs (and so did reading
-- the lines once, for customer_products only, with the product windows in a model of their own).
customer_days as (

    select * from {{ ref('int_customer_days') }}

),

transaction_lines as (

    select * from {{ ref('int_transaction_lines') }}

),

session_days as (

    select * from {{ ref('int_customer_session_days') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

-- Every window is [cutoff - N days, cutoff): start included, cutoff excluded.
cutoff_windows as (

    select
        cutoffs.cutoff_date,
        order_value_caps.cap_value,
        {%- for days in windows_days %}
        cast({{ dbt.dateadd('day', -days, 'cutoffs.cutoff_date') }} as date) as window_{{ days }}d_start_date,
        {%- endfor %}
        cutoffs.is_followed_by_data

    from cutoffs
    left join order_value_caps
        on order_value_caps.cutoff_date = cutoffs.cutoff_date

),

-- Each purchase day with the customer's previous purchase day. Consecutive purchase days do not
-- depend on the cutoff, so the gaps before a cutoff are those of the purchase days before it.
customer_days_with_previous as (

    select
        customer_id,
        activity_date,
        is_purchase_day,
        orders,
        purchase_lines,
        items,
        gross_purchase_value,
        cancelled_value,
        net_value,
        country,
        case
            when is_purchase_day
                then lag(activity_date) over (partition by customer_id, is_purchase_day order by activity_date)
        end as previous_purchase_date

    from customer_days

),

-- Point-in-time rule: only days strictly before the cutoff date (that is, before its midnight),
-- with order values capped at the cutoff's cap.
history as (

    select
        cutoff_windows.cutoff_date,
        {%- for days in windows_days %}
        cutoff_windows.window_{{ days }}d_start_date,
        {%- endfor %}
        previous_days.customer_id,
        previous_days.activity_date,
        previous_days.is_purchase_day,
        cast({{ dbt.datediff('previous_days.previous_purchase_date', 'previous_days.activity_date', 'day') }} as bigint)
            as days_since_previous_purchase,
        previous_days.orders,
        previous_days.purchase_lines,
        previous_days.items,
        previous_days.country,
        {{ capped_day_values('previous_days', 'cutoff_windows.cap_value') }}

    from cutoff_windows
    inner join customer_days_with_previous as previous_days
        on previous_days.activity_date < cutoff_windows.cutoff_date

),

{% set gap = 'days_since_previous_purchase' -%}
-- Every sum is exact, so the features do not depend on the order the engine sums in: money is
-- summed as DECIMAL and turned into DOUBLE once summed (all later arithmetic is DOUBLE on both
-- engines, whose DECIMAL division rules differ); the gaps' standard deviation comes from integer
-- sums, n * sum(x^2) - sum(x)^2 exactly, where stddev_samp would accumulate floating point.
history_summary as (

    select
        customer_id,
        cutoff_date,
        count(case when is_purchase_day then activity_date end) as purchase_days,
        min(case when is_purchase_day then activity_date end) as first_purchase_date,
        max(case when is_purchase_day then activity_date end) as last_purchase_date,
        -- coalesce: the engines' max_by differ on a NULL value; '' keeps them equal.
        nullif(max_by(coalesce(country, ''), case when is_purchase_day then activity_date end), '') as last_purchase_country,
        cast(sum(case when is_purchase_day then gross_purchase_value else 0 end) as double) as purchase_value,
        cast(sum(case when {{ gap }} is not null then gross_purchase_value else 0 end) as double) as repeat_purchase_value,
        case
            when count({{ gap }}) > 1
                then sqrt(
                    cast(count({{ gap }}) * sum({{ gap }} * {{ gap }}) - sum({{ gap }}) * sum({{ gap }}) as double)
                    / (count({{ gap }}) * (count({{ gap }}) - 1))
                )
        end as purchase_gap_stddev_days,
        cast(sum(cancelled_value) as double) as cancelled_value,
        sum(orders) as orders,
        sum(purchase_lines) as purchase_lines,
        sum(items) as items,
        cast(sum(case when activity_date >= window_{{ recent_days }}d_start_date then gross_purchase_value else 0 end) as double)
            as purchase_value_{{ recent_days }}d,
        {%- for days in windows_days %}
        sum(case when activity_date >= window_{{ days }}d_start_date then orders else 0 end) as orders_{{ days }}d,
        cast(sum(case when activity_date >= window_{{ days }}d_start_date then net_value else 0 end) as double)
            as spend_{{ days }}d,
        sum(case when activity_date >= window_{{ days }}d_start_date then items else 0 end)
            as items_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from history
    group by
        customer_id,
        cutoff_date

),

-- Purchase lines that name a product (a line without a stock code is a purchase but no product).
-- Read as lines: a customer rarely buys one product twice a day, so a daily customer x product
-- aggregate would store nearly every line again (9.2M product days from 9.25M purchase lines at
-- 10M lines) and only add a table to write.
product_lines as (

    select
        customer_id,
        stock_code,
        invoice_date as activity_date

    from transaction_lines
    where
        is_purchase
        and stock_code is not null

),

-- One row per product a customer ever bought, with the first and last day they bought it.
customer_products as (

    select
        customer_id,
        stock_code,
        min(activity_date) as first_purchase_date,
        max(activity_date) as last_purchase_date

    from product_lines
    group by
        customer_id,
        stock_code

),

-- The products bought before each cutoff, from one pass over the lines whatever the number of
-- cutoffs. Where no data follows the cutoff (int_cutoffs.is_followed_by_data), nothing has been bought
-- since, so a product's last purchase day decides the windows it counts in (distinct_products_<N>d);
-- where data follows, product_windows counts them from the lines.
product_summary as (

    select
        customer_products.customer_id,
        cutoff_windows.cutoff_date,
        count(*) as distinct_products,
        {%- for days in windows_days %}
        count(
            case
                when not cutoff_windows.is_followed_by_data
                    and customer_products.last_purchase_date >= cutoff_windows.window_{{ days }}d_start_date
                    then 1
            end
        ) as distinct_products_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from cutoff_windows
    inner join customer_products
        on customer_products.first_purchase_date < cutoff_windows.cutoff_date
    group by
        customer_products.customer_id,
        cutoff_windows.cutoff_date

),

-- At a cutoff some data follows (a training cutoff, or scoring at a past date): the last purchase
-- day of each product in the longest window before it decides the windows it counts in.
product_window_days as (

    select
        product_lines.customer_id,
        cutoff_windows.cutoff_date,
        product_lines.stock_code,
        max(product_lines.activity_date) as last_purchase_date

    from cutoff_windows
    inner join product_lines
        on
            product_lines.activity_date >= cutoff_windows.window_{{ windows_days | max }}d_start_date
            and product_lines.activity_date < cutoff_windows.cutoff_date
    where cutoff_windows.is_followed_by_data
    group by
        product_lines.customer_id,
        cutoff_windows.cutoff_date,
        product_lines.stock_code

),

product_windows as (

    select
        product_window_days.customer_id,
        product_window_days.cutoff_date,
        {%- for days in windows_days %}
        count(
            case when product_window_days.last_purchase_date >= cutoff_windows.window_{{ days }}d_start_date then 1 end
        ) as distinct_products_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from product_window_days
    inner join cutoff_windows
        on cutoff_windows.cutoff_date = product_window_days.cutoff_date
    group by
        product_window_days.customer_id,
        product_window_days.cutoff_date

),

-- Session days in [cutoff - recent_days, cutoff). Windows start and end at midnight, so a
-- session day is inside or outside whole: the same as comparing the events' timestamps.
window_session_days as (

    select
        session_days.customer_id,
        cutoff_windows.cutoff_date,
        session_days.session_id,
        session_days.activity_date,
        session_days.first_event_at,
        session_days.last_event_at,
        session_days.page_views,
        session_days.searches,
        session_days.add_to_cart

    from cutoff_windows
    inner join session_days
        on
            session_days.activity_date >= cutoff_windows.window_{{ recent_days }}d_start_date
            and session_days.activity_date < cutoff_windows.cutoff_date

),

-- A session's duration and events count only its session days inside the window.
window_sessions as (

    select
        customer_id,
        cutoff_date,
        session_id,
        cast({{ dbt.datediff('min(first_event_at)', 'max(last_event_at)', 'second') }} as bigint) as duration_seconds,
        sum(page_views) as page_views,
        sum(searches) as searches,
        sum(add_to_cart) as add_to_cart

    from window_session_days
    group by
        customer_id,
        cutoff_date,
        session_id

),

session_summary as (

    select
        customer_id,
        cutoff_date,
        count(*) as sessions,
        -- The mean from the exact integer sum: avg() of DOUBLEs depends on the summation order.
        cast(sum(duration_seconds) as double) / count(duration_seconds) as session_seconds_mean,
        sum(page_views) as page_views,
        sum(searches) as searches,
        sum(add_to_cart) as add_to_cart

    from window_sessions
    group by
        customer_id,
        cutoff_date

),

-- Days with an add-to-cart event, and whether the customer made a purchase that same day.
cart_days as (

    select
        customer_id,
        cutoff_date,
        activity_date as cart_date

    from window_session_days
    where add_to_cart > 0
    group by
        customer_id,
        cutoff_date,
        activity_date

),

cart_summary as (

    select
        cart_days.customer_id,
        cart_days.cutoff_date,
        count(*) as cart_days,
        count(customer_days.activity_date) as purchased_cart_days

    from cart_days
    left join customer_days
        on
            customer_days.customer_id = cart_days.customer_id
            and customer_days.activity_date = cart_days.cart_date
            and customer_days.is_purchase_day
    group by
        cart_days.customer_id,
        cart_days.cutoff_date

),

-- A customer exists at a cutoff once they have purchased before it.
purchasers as (

    select
        history_summary.*,
        coalesce(customers.country, history_summary.last_purchase_country, 'unknown') as country,
        coalesce(customers.acquisition_channel, 'unknown') as acquisition_channel,
        -- Tenure starts at signup, or at the first purchase when that is earlier or the customer
        -- is not in raw.customers: a signup dated after the first purchase (or the cutoff) is ignored.
        case
            when customers.signup_date < history_summary.first_purchase_date then customers.signup_date
            else history_summary.first_purchase_date
        end as relationship_start_date

    from history_summary
    left join customers
        on customers.customer_id = history_summary.customer_id
    where history_summary.purchase_days > 0

),

-- Customers per country and cutoff, for the frequency encoding (a group by, not a window over
-- every row: the same counts for much less sorting).
country_counts as (

    select
        cutoff_date,
        country,
        count(*) as customers,
        sum(count(*)) over (partition by cutoff_date) as cutoff_customers

    from purchasers
    group by
        cutoff_date,
        country

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
        cast(
            case
                when purchasers.purchase_days > 1
                    then purchasers.repeat_purchase_value / (purchasers.purchase_days - 1)
                else 0
            end
            as double
        ) as monetary_value,

        ---------- trailing windows
        {%- for days in windows_days %}
        cast(purchasers.orders_{{ days }}d as bigint) as orders_{{ days }}d,
        {%- endfor %}
        {%- for days in windows_days %}
        cast(purchasers.spend_{{ days }}d as double) as spend_{{ days }}d,
        {%- endfor %}
        {%- for days in windows_days %}
        cast(purchasers.items_{{ days }}d as bigint) as items_{{ days }}d,
        {%- endfor %}
        {%- for days in windows_days %}
        -- From product_summary or product_windows, whichever counts at this cutoff (the other has 0 or no row).
        cast(
            coalesce(product_summary.distinct_products_{{ days }}d, 0)
            + coalesce(product_windows.distinct_products_{{ days }}d, 0)
            as bigint
        ) as distinct_products_{{ days }}d,
        {%- endfor %}
        {%- for measure in ['orders', 'spend'] %}
        cast(
            case
                when purchasers.{{ measure }}_{{ trend_long_days }}d > 0
                    then (cast(purchasers.{{ measure }}_{{ recent_days }}d as double) / {{ recent_days }})
                    / (cast(purchasers.{{ measure }}_{{ trend_long_days }}d as double) / {{ trend_long_days }})
                else 0
            end
            as double
        ) as {{ measure }}_trend_{{ recent_days }}d_{{ trend_long_days }}d,
        {%- endfor %}

        ---------- purchase pattern
        cast(
            case
                when purchasers.purchase_days > 1
                    then
                        cast(
                            {{ dbt.datediff('purchasers.first_purchase_date', 'purchasers.last_purchase_date', 'day') }} as double
                        )
                    / (purchasers.purchase_days - 1)
                else 0
            end
            as double
        ) as purchase_gap_mean_days,
        cast(coalesce(purchasers.purchase_gap_stddev_days, 0) as double) as purchase_gap_stddev_days,
        cast(purchasers.purchase_value / purchasers.orders as double) as basket_value_mean,
        cast(purchasers.items as double) / purchasers.orders as basket_items_mean,
        cast(coalesce(product_summary.distinct_products, 0) as bigint) as distinct_products,
        cast(coalesce(product_summary.distinct_products, 0) as double) / purchasers.purchase_lines as product_diversity,
        cast(abs(purchasers.cancelled_value) / purchasers.purchase_value as double) as return_rate,
        cast(purchasers.purchase_value_{{ recent_days }}d / purchasers.purchase_value as double)
            as spend_share_{{ recent_days }}d,

        ---------- web behaviour in [cutoff - {{ recent_days }} days, cutoff)
        cast(coalesce(session_summary.sessions, 0) as bigint) as sessions_{{ recent_days }}d,
        cast(coalesce(session_summary.session_seconds_mean, 0) as double) as session_seconds_mean_{{ recent_days }}d,
        cast(coalesce(session_summary.page_views, 0) as bigint) as page_views_{{ recent_days }}d,
        cast(coalesce(session_summary.searches, 0) as bigint) as searches_{{ recent_days }}d,
        cast(coalesce(session_summary.add_to_cart, 0) as bigint) as add_to_cart_{{ recent_days }}d,
        cast(
            case
                when cart_summary.cart_days > 0 then cast(cart_summary.purchased_cart_days as double) / cart_summary.cart_days
                else 0
            end
            as double
        ) as cart_to_purchase_{{ recent_days }}d,

        ---------- customer attributes
        cast({{ dbt.datediff('purchasers.relationship_start_date', 'purchasers.cutoff_date', 'day') }} as bigint) as tenure_days,
        cast(country_counts.customers as double) / country_counts.cutoff_customers as country_customer_share,
        {%- for channel in acquisition_channels() %}
        cast(case when purchasers.acquisition_channel = '{{ channel }}' then 1 else 0 end as integer) as channel_{{ channel }},
        {%- endfor %}
        purchasers.country,
        purchasers.acquisition_channel,

        ---------- dates
        purchasers.first_purchase_date,
        purchasers.last_purchase_date

    from purchasers
    inner join cutoffs
        on cutoffs.cutoff_date = purchasers.cutoff_date
    inner join country_counts
        on
            country_counts.cutoff_date = purchasers.cutoff_date
            and country_counts.country = purchasers.country
    left join product_summary
        on
            product_summary.customer_id = purchasers.customer_id
            and product_summary.cutoff_date = purchasers.cutoff_date
    left join product_windows
        on
            product_windows.customer_id = purchasers.customer_id
            and product_windows.cutoff_date = purchasers.cutoff_date
    left join session_summary
        on
            session_summary.customer_id = purchasers.customer_id
            and session_summary.cutoff_date = purchasers.cutoff_date
    left join cart_summary
        on
            cart_summary.customer_id = purchasers.customer_id
            and cart_summary.cutoff_date = purchasers.cutoff_date

)

select * from final
