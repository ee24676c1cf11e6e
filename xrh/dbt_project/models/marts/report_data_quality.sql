{#- How many images each data-quality rule touched, per column, with up to three example raw values: the summary
    `xrh build` prints and the HTML report shows. -#}
with data_quality as (
    select * from {{ ref('data_quality') }}
),

examples as (
    select
        rule,
        column_name,
        raw_value,
        row_number() over (partition by rule, column_name order by count(*) desc, raw_value) as example_rank
    from data_quality
    group by rule, column_name, raw_value
),

final as (
    select
        data_quality.rule,
        data_quality.column_name,
        count(*) as images,
        (
            select group_concat(coalesce('''' || examples.raw_value || '''', 'blank'), ', ')
            from examples
            where examples.rule = data_quality.rule
                and examples.column_name = data_quality.column_name
                and examples.example_rank <= 3
        ) as example_raw_values
    from data_quality
    group by data_quality.rule, data_quality.column_name
)

select * from final
