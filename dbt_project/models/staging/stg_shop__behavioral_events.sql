with

source as (

    select * from {{ source('raw', 'behavioral_events') }}

),

final as (

    select
        ---------- ids
        trim(event_id) as event_id,
        trim(session_id) as session_id,
        nullif(trim(customer_id), '') as customer_id,

        ---------- categories
        lower(trim(event_type)) as event_type,

        ---------- timestamps
        cast(event_timestamp as timestamp) as occurred_at

    from source

)

select * from final
