{#- The run id of the latest finished successful job run of ``kind`` (the runs table written by xrh.runs), as a
    select: the one definition of "latest run" on the SQL side (Python's is xrh.runs.latest_succeeded_run). -#}
{% macro latest_succeeded_run(kind) -%}
    select run_id from {{ source('results', 'runs') }}
    where kind = '{{ kind }}' and status = 'succeeded'
    order by ended_at desc, started_at desc
    limit 1
{%- endmacro %}
