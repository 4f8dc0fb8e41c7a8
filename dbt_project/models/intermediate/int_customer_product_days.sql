{{ config(**daily_incremental_config()) }}

with

transactions as (

    select * from {{ ref('int_transaction_lines') }}
    {{ daily_incremental_filter('invoice_date') }}

),

-- Purchase lines that name a product: a line without a stock code is a purchase but no product.
purchase_lines as (

    select
        customer_id,
        stock_code,
        invoice_date,
        quantity

    from transactions
    where
        is_purchase
        and stock_code is not null

),

final as (

    select
        customer_id,
        stock_code,
        invoice_date as activity_date,
        cast(sum(quantity) as bigint) as items

    from purchase_lines
    group by
        customer_id,
        stock_code,
        invoice_date

)

select * from final
