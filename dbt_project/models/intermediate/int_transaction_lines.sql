{{ config(**daily_incremental_config('invoice_date')) }}

-- Staging's deduplicated lines, stored once per run: deduplicating every raw line is the costliest
-- step of the daily aggregates, which would each repeat it if they read the staging view.
with

transactions as (

    select * from {{ ref('stg_shop__transactions') }}
    {{ daily_incremental_filter('invoiced_at', 'invoice_date') }}

),

final as (

    select
        customer_id,
        invoice_no,
        stock_code,
        country,
        quantity,
        line_amount,
        invoice_date,
        is_purchase,
        is_cancellation,
        is_non_product

    from transactions

)

select * from final
