with

source as (

    select * from {{ source('raw', 'transactions') }}

),

cleaned as (

    select
        trim(invoice_no) as invoice_no,
        nullif(trim(stock_code), '') as stock_code,
        trim(description) as description,
        cast(quantity as bigint) as quantity,
        cast(invoice_date as timestamp) as invoiced_at,
        cast(unit_price as double) as unit_price,
        nullif(trim(customer_id), '') as customer_id,
        trim(country) as country

    from source

),

-- The raw log repeats some lines exactly; keep one copy of each.
deduplicated as (

    select distinct
        invoice_no,
        stock_code,
        description,
        quantity,
        invoiced_at,
        unit_price,
        customer_id,
        country

    from cleaned

),

flagged as (

    select
        ---------- ids
        {{ surrogate_key([
            'invoice_no', 'stock_code', 'description', 'quantity',
            'invoiced_at', 'unit_price', 'customer_id', 'country'
        ]) }} as transaction_line_id,
        invoice_no,
        stock_code,
        customer_id,

        ---------- text
        description,
        country,

        ---------- numerics
        quantity,
        unit_price,
        -- Exact money: DECIMAL sums give the same result in any order (parallel aggregates, DuckDB or
        -- Spark), DOUBLE sums do not. 4 decimal places hold any UCI line (prices have at most 3).
        cast(round(cast(quantity as double) * unit_price, 4) as decimal(18, 4)) as line_amount,

        ---------- timestamps
        invoiced_at,
        cast(invoiced_at as date) as invoice_date,

        ---------- flags
        upper(substr(invoice_no, 1, 1)) = 'C' as is_cancellation,
        {{ is_non_product_stock_code('stock_code') }} as is_non_product

    from deduplicated

),

final as (

    select
        transaction_line_id,
        invoice_no,
        stock_code,
        customer_id,
        description,
        country,
        quantity,
        unit_price,
        line_amount,
        invoiced_at,
        invoice_date,
        is_cancellation,
        is_non_product,
        (
            not is_cancellation
            and not is_non_product
            and quantity > 0
            and unit_price > 0
            and customer_id is not null
        ) as is_purchase

    from flagged

)

select * from final
