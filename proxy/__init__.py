"""The OpenAI API surface: app, routing, shadowing, errors, config, CLI."""
