{#-
    How `tool_called` and `tool_failed` events relate: the `tool_failure_reading` var.

    - `subset` (default): every call is reported by a `tool_called` event, and a call that
      fails is reported again by a `tool_failed` event (what tool-tracing producers emit).
      Calls = `tool_called`; failure rate = `tool_failed` / `tool_called`.
    - `disjoint`: each call is reported once, by `tool_called` when it succeeds or by
      `tool_failed` when it fails. Calls = `tool_called` + `tool_failed`; failure rate =
      `tool_failed` / (`tool_called` + `tool_failed`).

    `tool_event_calls(called, failed)` is the calls expression for the two event counts. Any
    other value of the var stops the build with a message saying what to set.
-#}
{% macro tool_event_calls(called, failed) -%}
    {%- set reading = var('tool_failure_reading', 'subset') -%}
    {%- if reading == 'disjoint' -%}
        ({{ called }} + {{ failed }})
    {%- else -%}
        {#- `exceptions is defined`: sqlfluff's lint templater has no `exceptions` -#}
        {%- if reading != 'subset' and exceptions is defined -%}
            {{ exceptions.raise_compiler_error(
                "var tool_failure_reading is '" ~ reading ~ "': set it to 'subset' (every call"
                ~ " is a tool_called event, a failed call is also a tool_failed event) or"
                ~ " 'disjoint' (a call is either a tool_called or a tool_failed event)"
            ) }}
        {%- endif -%}
        {{ called }}
    {%- endif -%}
{%- endmacro %}
