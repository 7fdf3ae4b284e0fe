"""A real instrumented application, run as a subprocess by tests/e2e/test_llm_clients.py.

It calls the `openai` client against the test's stand-in for the model API, with one of the
real instrumentations around it, and exports the spans with the OpenTelemetry SDK's OTLP
protobuf exporter to `agent-loader serve`, as an agent in production would:

    python -m tests.e2e.llm_client MODE --api URL --endpoint URL --key KEY --tenant T --calls N

MODE: `openai-v2` (opentelemetry-instrumentation-openai-v2, its default conventions),
`openai-v2-latest` (the same with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental,
set by the test) or `openinference` (openinference-instrumentation-openai). Each mode needs a
process of its own: instrumentations patch the client globally.
"""

from __future__ import annotations

import argparse

import openai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["openai-v2", "openai-v2-latest", "openinference"])
    parser.add_argument("--api", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--calls", type=int, default=1)
    args = parser.parse_args()

    # The tenant on the resource: one process serves one tenant here (docs/opentelemetry.md).
    resource = Resource.create({"service.name": f"agent-{args.mode}", "tenant.id": args.tenant})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(
        endpoint=f"{args.endpoint}/v1/traces", headers={"Authorization": f"Bearer {args.key}"}
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if args.mode == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai_v2 import (  # type: ignore[no-redef]
            OpenAIInstrumentor,
        )
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    client = openai.OpenAI(base_url=f"{args.api}/v1", api_key="not-a-key", max_retries=0)
    for _ in range(args.calls):
        client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "Where is my order?"}]
        )
    provider.shutdown()  # flushes the exporter


if __name__ == "__main__":
    main()
