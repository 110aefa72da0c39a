"""OpenTelemetry set-up, GenAI instruments, hop counting and GPU energy metering."""
