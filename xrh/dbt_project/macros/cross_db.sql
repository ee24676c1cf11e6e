{#- Cross-database helpers that dbt-sqlite lacks, dispatched so the same models build on SQLite and DuckDB.
    Timestamps are TEXT 'YYYY-MM-DD HH:MM:SS' throughout, as MIMIC ships them; they compare correctly as text.
    Expression columns are CAST to a declared type: SQLite reports no type for a bare expression, and dbt's unit tests
    cast fixtures to the reported type. -#}

{#- Seconds from start to end (NULL if either is NULL). -#}
{% macro seconds_between(start, end) -%}
    {{ return(adapter.dispatch('seconds_between', 'xrh')(start, end)) }}
{%- endmacro %}

{% macro sqlite__seconds_between(start, end) -%}
    cast(round((julianday({{ end }}) - julianday({{ start }})) * 86400.0) as integer)
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
    date_diff('second', cast({{ start }} as timestamp), cast({{ end }} as timestamp))
{%- endmacro %}

{#- A DICOM-style date (YYYYMMDD, text or integer) and time (HHMMSS[.ffffff], text or a float that lost its leading
    zeros, as in MIMIC-CXR-JPG's metadata) as a 'YYYY-MM-DD HH:MM:SS' timestamp (fractions of a second dropped). -#}
{% macro dicom_timestamp(date, time) -%}
    cast(case when {{ date }} is not null and {{ time }} is not null then
        substr(cast({{ date }} as varchar), 1, 4) || '-' || substr(cast({{ date }} as varchar), 5, 2) || '-'
        || substr(cast({{ date }} as varchar), 7, 2) || ' '
        || substr({{ zero_padded_hhmmss(time) }}, 1, 2) || ':' || substr({{ zero_padded_hhmmss(time) }}, 3, 2) || ':'
        || substr({{ zero_padded_hhmmss(time) }}, 5, 2)
    end as text)
{%- endmacro %}

{% macro zero_padded_hhmmss(time) -%}
    printf('%06d', {{ truncated_integer('cast(' ~ time ~ ' as double)') }})
{%- endmacro %}

{#- The integer part of a positive number (SQLite's CAST truncates; DuckDB's rounds, so it floors first). -#}
{% macro truncated_integer(value) -%}
    {{ return(adapter.dispatch('truncated_integer', 'xrh')(value)) }}
{%- endmacro %}

{% macro sqlite__truncated_integer(value) -%} cast({{ value }} as integer) {%- endmacro %}

{% macro default__truncated_integer(value) -%} cast(floor({{ value }}) as integer) {%- endmacro %}

{#- The larger / smaller of two values (SQLite's scalar max/min; greatest/least elsewhere). -#}
{% macro greater_of(a, b) -%}
    {{ return(adapter.dispatch('greater_of', 'xrh')(a, b)) }}
{%- endmacro %}

{% macro sqlite__greater_of(a, b) -%} max({{ a }}, {{ b }}) {%- endmacro %}

{% macro default__greater_of(a, b) -%} greatest({{ a }}, {{ b }}) {%- endmacro %}

{% macro lesser_of(a, b) -%}
    {{ return(adapter.dispatch('lesser_of', 'xrh')(a, b)) }}
{%- endmacro %}

{% macro sqlite__lesser_of(a, b) -%} min({{ a }}, {{ b }}) {%- endmacro %}

{% macro default__lesser_of(a, b) -%} least({{ a }}, {{ b }}) {%- endmacro %}
