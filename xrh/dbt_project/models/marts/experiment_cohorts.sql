{#- Every experiment cohort declared in dbt_project.yml (var 'cohorts'), one row per image and cohort with its label. -#}
{%- set cohorts = var('cohorts') %}
{% for name, definition in cohorts.items() %}
select * from ({{ cohort_select(name, definition) }}) as cohort_{{ loop.index }}
{{ 'union all' if not loop.last }}
{% endfor %}
