{#- Everything lives in one warehouse file: every model goes to the target's schema (main), whatever its folder. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ target.schema }}
{%- endmacro %}
