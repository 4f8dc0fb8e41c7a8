with

source as (

    select * from {{ source('raw', 'customers') }}

),

final as (

    select
        ---------- ids
        trim(customer_id) as customer_id,

        ---------- attributes
        trim(country) as country,
        trim(acquisition_channel) as acquisition_channel,

        ---------- timestamps
        cast(signup_date as timestamp) as signed_up_at,
        cast(signup_date as date) as signup_date

    from source

)

select * from final
