{{ config(tags=['over_results']) }}
{#- The harmonization benchmark's latest evaluation, one row per method, ranked by how close the retrained scanner
    classifier comes to chance (0.5): the smaller the scanner signal left, the better. Methods without a retrained
    classifier (combat works on features) rank after the others, by MMD. Empty until `xrh harmonize evaluate` has
    written harm_evaluation (every build creates the result tables from their declarations first, so they exist). -#}
{#- (column, metric, field of harm_evaluation) -#}
{%- set columns = [
    ('retrained_balanced_accuracy', 'retrained_balanced_accuracy', 'value'),
    ('retrained_ci_low', 'retrained_balanced_accuracy', 'ci_low'),
    ('retrained_ci_high', 'retrained_balanced_accuracy', 'ci_high'),
    ('probe_balanced_accuracy', 'probe_balanced_accuracy', 'value'),
    ('mmd_squared', 'mmd_squared', 'value'),
    ('mmd_p_value', 'mmd_squared', 'p_value'),
    ('frechet_distance', 'frechet_distance', 'value'),
    ('ssim', 'ssim', 'value'),
    ('psnr', 'psnr', 'value'),
    ('diagnostic_auc_internal', 'diagnostic_auc_internal', 'value'),
    ('diagnostic_auc_external', 'diagnostic_auc_external', 'value'),
    ('diagnostic_auc_mean', 'diagnostic_auc_mean', 'value'),
    ('diagnostic_auc_gap', 'diagnostic_auc_gap', 'value'),
    ('diagnostic_gap_ci_low', 'diagnostic_auc_gap', 'ci_low'),
    ('diagnostic_gap_ci_high', 'diagnostic_auc_gap', 'ci_high'),
] -%}
with evaluation as (
    select * from {{ source('results', 'harm_evaluation') }}
),

latest_run as (
    {{ latest_succeeded_run('harmonize_evaluate') }}
),

pivoted as (
    select
        evaluation.run_id,
        evaluation.method,
        {%- for column, metric, field in columns %}
        max(case when metric = '{{ metric }}' then {{ field }} end) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from evaluation
    inner join latest_run
        on evaluation.run_id = latest_run.run_id
    group by evaluation.run_id, evaluation.method
),

final as (
    select
        cast(rank() over (
            order by retrained_balanced_accuracy is null, abs(retrained_balanced_accuracy - 0.5), mmd_squared
        ) as integer) as rank,
        *
    from pivoted
)

select * from final
