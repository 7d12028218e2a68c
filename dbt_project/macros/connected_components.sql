{#- Connected components of an undirected graph, in rounds of plain SQL, on every engine
    (identity resolution, models/intermediate/identity/int_accounts_resolved.sql).

    A recursive CTE would need `union` (distinct) to stop on the cycles of a shared-key graph:
    Spark has none (4.x has `with recursive` with `union all` only, which never ends on a cycle),
    and its cost grows with the square of a component's size. Instead, while the model is
    rendered at execution time, run_query runs rounds over scratch tables next to the model:

      labels(node, label) starts as label = node for every node of an edge; one round is
        1. propagation: a node takes the smallest label among its own and its neighbours';
        2. shortcut (pointer jumping): a node takes its label's label when that is smaller;
      and rounds repeat until no label changes.

    Why it is exact: a label is always a node of the same component (true at the start; both
    steps only copy labels along edges or from a node of the component), and labels only
    decrease, so the rounds end. When a round changes nothing, the two ends of every edge have the
    same label (else step 1 changes one), so a component has one label; the component's smallest
    node keeps its own label throughout (no smaller one is in reach), so that label is the
    smallest node. The shortcut halves the distance a label still has to travel, so a chain of n
    nodes takes about log2(n) rounds, not n. `identity_max_rounds` (a var) bounds the rounds: if
    they run out, the build fails rather than return unfinished components.

    `edges_sql` selects (src, dst) with both directions of every edge; node ids are integers.
    Returns the relation holding (node, label); drop_connected_components() removes the scratch
    tables (the model's post-hook). Outside execution (parse, compile, docs, lint) nothing runs and
    the relation is named only. -#}

{% macro connected_components_relation(suffix) -%}
    {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__cc_' ~ suffix, type='table')) }}
{%- endmacro %}

{% macro connected_components(edges_sql) -%}
    {%- set edges = connected_components_relation('edges') -%}
    {%- set tables = [connected_components_relation('labels_a'), connected_components_relation('labels_b')] -%}
    {%- if not (execute and flags.WHICH in ('run', 'build')) -%}
        {{ return(tables[0]) }}
    {%- endif -%}
    {%- set max_rounds = var('identity_max_rounds') | int -%}
    {%- do drop_connected_components() -%}
    {%- do run_query(get_create_table_as_sql(false, edges, edges_sql)) -%}
    {%- do run_query(get_create_table_as_sql(false, tables[0], connected_components_start(edges))) -%}
    {%- set state = namespace(current=0, rounds=0, done=false) -%}
    {%- for round in range(max_rounds) if not state.done -%}
        {%- set labels = tables[state.current] -%}
        {%- set next = tables[1 - state.current] -%}
        {%- do adapter.drop_relation(next) -%}
        {%- do run_query(get_create_table_as_sql(false, next, connected_components_round(edges, labels))) -%}
        {%- set changed = run_query(connected_components_changed(labels, next)).columns[0].values()[0] -%}
        {%- set state.current = 1 - state.current -%}
        {%- set state.rounds = state.rounds + 1 -%}
        {%- if changed | int == 0 -%}
            {%- set state.done = true -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not state.done -%}
        {%- do drop_connected_components() -%}
        {{ exceptions.raise_compiler_error(
            "connected_components: labels still changed after " ~ max_rounds ~ " rounds in " ~ this
            ~ "; raise the var identity_max_rounds (a chain of n accounts needs about log2(n) + 2)") }}
    {%- endif -%}
    {%- do log("connected_components: " ~ this ~ " converged in " ~ state.rounds ~ " round(s)") -%}
    {{ return(tables[state.current]) }}
{%- endmacro %}

{#- The first labels: every node of an edge labelled with itself. -#}
{% macro connected_components_start(edges) -%}
    select edges.src as node, edges.src as label from {{ edges }} as edges
    union
    select edges.dst as node, edges.dst as label from {{ edges }} as edges
{%- endmacro %}

{#- One round: propagation (the smallest of a node's and its neighbours' labels), then the
    shortcut (the label's own label when smaller). -#}
{% macro connected_components_round(edges, labels) -%}
    with neighbour_labels as (
        select edges.src as node, min(neighbours.label) as label
        from {{ edges }} as edges
        inner join {{ labels }} as neighbours on edges.dst = neighbours.node
        group by edges.src
    ),

    propagated as (
        select
            labels.node,
            case
                when neighbour_labels.label < labels.label then neighbour_labels.label
                else labels.label
            end as label
        from {{ labels }} as labels
        left join neighbour_labels on labels.node = neighbour_labels.node
    )

    select
        propagated.node,
        case when jumped.label < propagated.label then jumped.label else propagated.label end as label
    from propagated
    inner join propagated as jumped on propagated.label = jumped.node
{%- endmacro %}

{#- How many nodes a round gave another label. -#}
{% macro connected_components_changed(labels, next_labels) -%}
    select count(*) as changed
    from {{ next_labels }} as next_labels
    inner join {{ labels }} as labels on next_labels.node = labels.node
    where next_labels.label <> labels.label
{%- endmacro %}

{#- The model's post-hook: its scratch tables are removed (the edges and both label tables). -#}
{% macro drop_connected_components() -%}
    {%- if execute -%}
        {%- for suffix in ['edges', 'labels_a', 'labels_b'] -%}
            {%- do adapter.drop_relation(connected_components_relation(suffix)) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1 as scratch_dropped
{%- endmacro %}
