{{ config(tags=['over_results']) }}
{#- The headline metrics (balanced accuracy, AUC, calibration error per split) of the latest finished training run.
    Tagged over_results: the report rebuilds it (`dbt build --select tag:over_results`) after the jobs have run. -#}
with latest_run as (
    {{ latest_succeeded_run('train') }}
),

final as (
    select
        metrics.run_id,
        metrics.split,
        metrics.metric,
        round(metrics.value, 4) as value
    from {{ source('results', 'ml_metrics') }} as metrics
    inner join latest_run
        on metrics.run_id = latest_run.run_id
    where metrics.true_class is null
)

select * from final
