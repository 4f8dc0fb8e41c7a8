{{ config(meta={'dagster': {'ref': {'name': 'int_cutoffs'}}}) }}

-- Exactly one scoring cutoff, and every training label window [cutoff_date, horizon_end_date)
-- ends on or before it, so no label reads data the scoring run would not have.
with

cutoffs as (

    select * from {{ ref('int_cutoffs') }}

),

scoring_cutoffs as (

    select
        count(*) as scoring_cutoff_count,
        max(cutoff_date) as scoring_cutoff_date
    from cutoffs
    where cutoff_kind = 'scoring'

),

wrong_scoring_count as (

    select
        cast(null as date) as cutoff_date,
        'expected exactly one scoring cutoff' as problem
    from scoring_cutoffs
    where scoring_cutoff_count <> 1

),

late_label_windows as (

    select
        cutoffs.cutoff_date,
        'training label window ends after the scoring cutoff' as problem
    from cutoffs
    cross join scoring_cutoffs
    where
        cutoffs.is_training
        and cutoffs.horizon_end_date > scoring_cutoffs.scoring_cutoff_date

),

final as (

    select cutoff_date, problem from wrong_scoring_count
    union all
    select cutoff_date, problem from late_label_windows

)

select * from final
