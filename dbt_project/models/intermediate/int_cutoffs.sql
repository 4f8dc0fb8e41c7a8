{%- set cutoff_date = cutoff_date_var() -%}
{%- set horizon_days = non_negative_int_var('horizon_days') -%}
{%- set training_cutoffs = non_negative_int_var('training_cutoffs') -%}
{%- set cutoff_spacing_days = non_negative_int_var('cutoff_spacing_days') -%}
{%- if horizon_days < 1 -%}
    {{ exceptions.raise_compiler_error("var 'horizon_days' must be at least 1, got " ~ horizon_days) }}
{%- endif -%}
{%- if training_cutoffs > 1 and cutoff_spacing_days < 1 -%}
    {{ exceptions.raise_compiler_error("var 'cutoff_spacing_days' must be at least 1 when training_cutoffs > 1, got " ~ cutoff_spacing_days) }}
{%- endif -%}

with

transactions as (

    select * from {{ ref('int_transaction_lines') }}

),

latest_invoice as (

    select max(invoice_date) as latest_invoice_date

    from transactions

),

scoring_cutoff as (

    {% if cutoff_date is none -%}
    -- No cutoff_date var: score as of the day after the latest invoice in the data.
    select
        cast({{ dbt.dateadd('day', 1, 'latest_invoice_date') }} as date) as cutoff_date
    from latest_invoice
    {%- else -%}
    select
        cast('{{ cutoff_date }}' as date) as cutoff_date
    {%- endif %}

),

-- Training cutoff 1 is horizon_days before the scoring cutoff, so its label window
-- [cutoff, cutoff + horizon_days) ends exactly at the scoring cutoff: the evaluation cutoff.
-- Cutoff 2 is horizon_days before that, the newest whose label window ends by it, so a model judged
-- on cutoff 1 trains on the freshest labels there are; earlier ones step back by the spacing.
cutoffs as (

    select
        cutoff_date,
        'scoring' as cutoff_kind,
        0 as cutoff_index
    from scoring_cutoff
    {%- for index in range(1, training_cutoffs + 1) %}
    {%- set days_back = horizon_days * ([index, 2] | min) + ([index - 2, 0] | max) * cutoff_spacing_days %}

    union all

    select
        cast({{ dbt.dateadd('day', -days_back, 'cutoff_date') }} as date) as cutoff_date,
        'training' as cutoff_kind,
        {{ index }} as cutoff_index
    from scoring_cutoff
    {%- endfor %}

),

final as (

    select
        cutoffs.cutoff_date,
        cast(cutoffs.cutoff_date as timestamp) as cutoff_at,
        cutoffs.cutoff_kind,
        cutoffs.cutoff_kind = 'training' as is_training,
        cast(cutoffs.cutoff_index as integer) as cutoff_index,
        cast({{ horizon_days }} as integer) as horizon_days,
        cast({{ dbt.dateadd('day', horizon_days, 'cutoffs.cutoff_date') }} as date) as horizon_end_date,
        -- Whether any line is dated on or after the cutoff (a training cutoff, or scoring at a past
        -- date): where none is, every purchase's last day is before the cutoff.
        coalesce(cutoffs.cutoff_date <= latest_invoice.latest_invoice_date, false) as is_followed_by_data

    from cutoffs
    cross join latest_invoice
    where cutoffs.cutoff_date is not null

)

select * from final
