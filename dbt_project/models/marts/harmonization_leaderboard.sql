{#- The harmonization benchmark's latest evaluation per cohort run, one row per method, ranked by how close the
    retrained scanner classifier comes to chance (0.5): the smaller the scanner signal left, the better.
    Empty until `xrh harmonize evaluate` has written harm_evaluation. -#}
{%- set evaluation = source('results', 'harm_evaluation') -%}
{%- set runs = source('results', 'runs') -%}
{%- set exists = adapter.get_relation(database=evaluation.database, schema=evaluation.schema,
                                      identifier=evaluation.identifier) if execute else none -%}
{% if exists is not none %}
with evaluation as (
    select * from {{ evaluation }}
),

latest_run as (
    select run_id from {{ runs }}
    where kind = 'harmonize_evaluate' and status = 'succeeded'
    order by ended_at desc
    limit 1
),

pivoted as (
    select
        evaluation.run_id,
        evaluation.method,
        max(case when metric = 'retrained_balanced_accuracy' then value end) as retrained_balanced_accuracy,
        max(case when metric = 'retrained_balanced_accuracy' then ci_low end) as retrained_ci_low,
        max(case when metric = 'retrained_balanced_accuracy' then ci_high end) as retrained_ci_high,
        max(case when metric = 'probe_balanced_accuracy' then value end) as probe_balanced_accuracy,
        max(case when metric = 'mmd_squared' then value end) as mmd_squared,
        max(case when metric = 'mmd_squared' then p_value end) as mmd_p_value,
        max(case when metric = 'frechet_distance' then value end) as frechet_distance,
        max(case when metric = 'ssim' then value end) as ssim,
        max(case when metric = 'psnr' then value end) as psnr
    from evaluation
    inner join latest_run
        on evaluation.run_id = latest_run.run_id
    group by evaluation.run_id, evaluation.method
),

final as (
    select
        cast(rank() over (order by abs(retrained_balanced_accuracy - 0.5), mmd_squared) as integer) as rank,
        *
    from pivoted
)

select * from final
{% else %}
select
    cast(null as integer) as rank,
    cast(null as text) as run_id,
    cast(null as text) as method,
    cast(null as double) as retrained_balanced_accuracy,
    cast(null as double) as retrained_ci_low,
    cast(null as double) as retrained_ci_high,
    cast(null as double) as probe_balanced_accuracy,
    cast(null as double) as mmd_squared,
    cast(null as double) as mmd_p_value,
    cast(null as double) as frechet_distance,
    cast(null as double) as ssim,
    cast(null as double) as psnr
where 1 = 0
{% endif %}
