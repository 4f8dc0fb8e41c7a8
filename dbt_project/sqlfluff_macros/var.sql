{# dbt's var() as sqlfluff sees it when it lints the models: the project's default (dbt_project.yml vars). #}
{% macro var(name, default=none) -%}
    {{ return(project.vars.get(name, default)) }}
{%- endmacro %}
