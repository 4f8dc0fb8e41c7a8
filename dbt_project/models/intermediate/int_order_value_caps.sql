{%- set cap_quantile = order_value_cap_quantile_var() -%}

with

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

customer_days as (

    select * from {{ ref('int_customer_days') }}

),

-- Orders (purchase days) up to each cutoff's label window end, tagged before / inside the window.
-- Order values as DOUBLE: here they are only ranked and compared, never summed, and DuckDB's
-- percentile_cont of a DECIMAL would round the cap to its 4 places (Spark's would not).
orders as (

    select
        cutoffs.cutoff_date,
        customer_days.activity_date < cutoffs.cutoff_date as is_before_cutoff,
        cast(customer_days.gross_purchase_value as double) as order_value

    from cutoffs
    inner join customer_days
        on customer_days.activity_date < cutoffs.horizon_end_date
    where customer_days.is_purchase_day

),

-- The cap is a quantile of the order values strictly before the cutoff: the training window.
caps as (

    {% if cap_quantile is none -%}
    select
        cutoff_date,
        cast(null as double) as cap_value

    from cutoffs
    {%- else -%}
    select
        cutoff_date,
        cast(percentile_cont({{ cap_quantile }}) within group (order by order_value) as double) as cap_value

    from orders
    where is_before_cutoff
    group by cutoff_date
    {%- endif %}

),

counts as (

    select
        orders.cutoff_date,
        count(case when orders.is_before_cutoff then 1 end) as orders_before_cutoff,
        count(case when orders.is_before_cutoff and orders.order_value > caps.cap_value then 1 end) as orders_capped,
        count(case when not orders.is_before_cutoff and orders.order_value > caps.cap_value then 1 end) as label_orders_capped

    from orders
    left join caps
        on caps.cutoff_date = orders.cutoff_date
    group by orders.cutoff_date

),

final as (

    select
        cutoffs.cutoff_date,
        cutoffs.cutoff_kind,
        cast({{ 'null' if cap_quantile is none else cap_quantile }} as double) as cap_quantile,
        caps.cap_value,
        cast(coalesce(counts.orders_before_cutoff, 0) as bigint) as orders_before_cutoff,
        cast(coalesce(counts.orders_capped, 0) as bigint) as orders_capped,
        cast(coalesce(counts.label_orders_capped, 0) as bigint) as label_orders_capped

    from cutoffs
    left join caps
        on caps.cutoff_date = cutoffs.cutoff_date
    left join counts
        on counts.cutoff_date = cutoffs.cutoff_date

)

select * from final
