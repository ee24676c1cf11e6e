{{ config(tags=['over_results']) }}
{#- The metrics of the latest finished training run per split: the headline ones (balanced accuracy, AUC, calibration
    error; no class) and precision and recall per class (class_name: the predicted class for precision, the true class
    for recall). The confusion counts stay in ml_metrics.
    Tagged over_results: the report rebuilds it (`dbt build --select tag:over_results`) after the jobs have run. -#}
with latest_run as (
    {{ latest_succeeded_run('train') }}
),

final as (
    select
        metrics.run_id,
        metrics.split,
        metrics.metric,
        coalesce(metrics.predicted_class, metrics.true_class) as class_name,
        round(metrics.value, 4) as value
    from {{ source('results', 'ml_metrics') }} as metrics
    inner join latest_run
        on metrics.run_id = latest_run.run_id
    where metrics.metric != 'confusion'
)

select * from final
