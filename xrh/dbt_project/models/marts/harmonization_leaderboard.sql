{{ config(tags=['over_results']) }}
{#- The harmonization benchmark's latest evaluation, one row per method. The rank is the evaluation's own
    (harmonize/evaluate.py): a method ranks when a scanner classifier retrained on its images is nearer chance than on
    unharmonized ones by a paired difference whose 95% interval excludes 0, while the outline-only and scalar-cue
    controls stay at chance and the diagnostic model's mean AUC holds; `ranking` says how each method earned its rank
    or why it has none. Empty until `xrh harmonize evaluate` has written harm_evaluation (every build creates the result
    tables from their declarations first, so they exist). -#}
{#- (column, metric, field of harm_evaluation) -#}
{%- set columns = [
    ('retrained_balanced_accuracy', 'retrained_balanced_accuracy', 'value'),
    ('retrained_ci_low', 'retrained_balanced_accuracy', 'ci_low'),
    ('retrained_ci_high', 'retrained_balanced_accuracy', 'ci_high'),
    ('retrained_on', 'retrained_balanced_accuracy', 'grouping'),
    ('distance_difference', 'retrained_distance_difference', 'value'),
    ('distance_difference_ci_low', 'retrained_distance_difference', 'ci_low'),
    ('distance_difference_ci_high', 'retrained_distance_difference', 'ci_high'),
    ('outline_only_balanced_accuracy', 'outline_only_balanced_accuracy', 'value'),
    ('scalar_cues_balanced_accuracy', 'scalar_cues_balanced_accuracy', 'value'),
    ('frame_outline_only_balanced_accuracy', 'frame_outline_only_balanced_accuracy', 'value'),
    ('frame_scalar_cues_balanced_accuracy', 'frame_scalar_cues_balanced_accuracy', 'value'),
    ('probe_balanced_accuracy', 'probe_balanced_accuracy', 'value'),
    ('probe_ci_low', 'probe_balanced_accuracy', 'ci_low'),
    ('probe_ci_high', 'probe_balanced_accuracy', 'ci_high'),
    ('probe_rbf_balanced_accuracy', 'probe_rbf_balanced_accuracy', 'value'),
    ('mmd_squared', 'mmd_squared', 'value'),
    ('mmd_p_value', 'mmd_squared', 'p_value'),
    ('frechet_distance', 'frechet_distance', 'value'),
    ('ssim', 'ssim', 'value'),
    ('psnr', 'psnr', 'value'),
    ('diagnostic_auc_internal', 'diagnostic_auc_internal', 'value'),
    ('diagnostic_auc_external', 'diagnostic_auc_external', 'value'),
    ('diagnostic_auc_mean', 'diagnostic_auc_mean', 'value'),
    ('diagnostic_mean_difference', 'diagnostic_auc_mean_difference', 'value'),
    ('diagnostic_mean_difference_ci_low', 'diagnostic_auc_mean_difference', 'ci_low'),
    ('diagnostic_mean_difference_ci_high', 'diagnostic_auc_mean_difference', 'ci_high'),
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
        cast(max(case when metric = 'rank' then value end) as integer) as rank,
        max(case when metric in ('rank', 'not_ranked') then grouping end) as ranking,
        {%- for column, metric, field in columns %}
        max(case when metric = '{{ metric }}' then {{ field }} end) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from evaluation
    inner join latest_run
        on evaluation.run_id = latest_run.run_id
    group by evaluation.run_id, evaluation.method
)

select * from pivoted
