"""CompletionFunction: transform job state change -> status record and metrics."""
