{#-
  Atomic rebuilds on SQLite. dbt-sqlite's own materializations drop a relation and create it again, and a reader in
  another connection sees "no such table" in between. Here everything happens inside dbt's transaction (opened by the
  in-transaction pre-hooks): a table is built under a staging name, the old one dropped and the new one renamed into
  place; a view is dropped and created. SQLite's DDL is transactional, so with WAL a reader sees the old relation or the
  new one until the commit, never none and never a partial one.
  legacy_alter_table keeps SQLite from re-validating every view during the rename: views over the table are briefly
  dangling inside the transaction, which a modern rename would refuse.
-#}
{% materialization table, adapter='sqlite' %}
  {%- set identifier = model['alias'] -%}
  {%- set old_relation = adapter.get_relation(database=database, schema=schema, identifier=identifier) -%}
  {%- set target_relation = api.Relation.create(identifier=identifier, schema=schema, database=database, type='table') -%}
  {%- set staging_relation = api.Relation.create(identifier=identifier ~ '__xrh_new', schema=schema, database=database,
                                                 type='table') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {% call statement('legacy_alter_on') -%} pragma legacy_alter_table = on {%- endcall %}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('drop_stale_staging') -%} drop table if exists {{ staging_relation }} {%- endcall %}
  {% call statement('main') -%}
    {{ create_table_as(False, staging_relation, sql) }}
  {%- endcall %}
  {% if old_relation is not none %}
    {% call statement('drop_old') -%} drop {{ old_relation.type }} {{ old_relation }} {%- endcall %}
  {% endif %}
  {% call statement('rename_into_place') -%}
    alter table {{ staging_relation }} rename to {{ adapter.quote(identifier) }}
  {%- endcall %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  -- `COMMIT` happens here:
  {{ adapter.commit() }}
  {% call statement('legacy_alter_off') -%} pragma legacy_alter_table = off {%- endcall %}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{% materialization view, adapter='sqlite' %}
  {%- set identifier = model['alias'] -%}
  {%- set old_relation = adapter.get_relation(database=database, schema=schema, identifier=identifier) -%}
  {%- set target_relation = api.Relation.create(identifier=identifier, schema=schema, database=database, type='view') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% if old_relation is not none %}
    {% call statement('drop_old') -%} drop {{ old_relation.type }} {{ old_relation }} {%- endcall %}
  {% endif %}
  {% call statement('main') -%}
    create view {{ target_relation }} as {{ sql }}
  {%- endcall %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  -- `COMMIT` happens here:
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
