"""RealtimeFunction: POST /score."""
