{{ config(**daily_incremental_config()) }}

with

transactions as (

    select * from {{ ref('int_transaction_lines') }}
    {{ daily_incremental_filter('invoice_date') }}

),

-- Product lines of known customers: purchases, cancellations, free and adjustment lines.
-- Guest lines and non-product codes (postage, fees, discounts, vouchers) are left out.
customer_lines as (

    select
        customer_id,
        invoice_date,
        invoice_no,
        country,
        quantity,
        line_amount,
        is_purchase,
        is_cancellation

    from transactions
    where
        customer_id is not null
        and not is_non_product

),

-- One row per invoice first: a day's orders and cancellations are then plain sums of flags. Two
-- count(distinct invoice_no) in one group by would make DuckDB deduplicate every line twice and
-- join the results (three times the work at 10M lines).
customer_invoices as (

    select
        customer_id,
        invoice_date,
        invoice_no,
        max(case when is_purchase then 1 else 0 end) as is_order,
        max(case when is_cancellation then 1 else 0 end) as is_cancellation,
        count(case when is_purchase then 1 end) as purchase_lines,
        sum(case when is_purchase then line_amount else 0 end) as gross_purchase_value,
        sum(case when is_cancellation then line_amount else 0 end) as cancelled_value,
        sum(line_amount) as net_value,
        sum(case when is_purchase then quantity else 0 end) as items,
        max(country) as country

    from customer_lines
    group by
        customer_id,
        invoice_date,
        invoice_no

),

customer_days as (

    select
        customer_id,
        invoice_date as activity_date,
        sum(is_order) as orders,
        sum(is_cancellation) as cancellations,
        sum(purchase_lines) as purchase_lines,
        sum(gross_purchase_value) as gross_purchase_value,
        sum(cancelled_value) as cancelled_value,
        sum(net_value) as net_value,
        sum(items) as items,
        max(country) as country

    from customer_invoices
    group by
        customer_id,
        invoice_date

),

final as (

    select
        customer_id,
        activity_date,
        cast(orders as bigint) as orders,
        cast(cancellations as bigint) as cancellations,
        cast(purchase_lines as bigint) as purchase_lines,
        -- Sums of the exact line amounts: the same in any summation order, on either engine.
        cast(gross_purchase_value as decimal(18, 4)) as gross_purchase_value,
        cast(cancelled_value as decimal(18, 4)) as cancelled_value,
        cast(net_value as decimal(18, 4)) as net_value,
        cast(items as bigint) as items,
        orders > 0 as is_purchase_day,
        country

    from customer_days

)

select * from final
