"""Where tokens come from: OpenAI-compatible HTTP upstreams and the in-process engine."""
