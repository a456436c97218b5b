"""Batch scoring domain logic, plain Python (no AWS SDK imports).

- batch.jobs: which uploads are input, the transform job's deterministic name
  and its CreateTransformJob request, where the output and the status record
  go, and how a finished job's output is counted (used by the Lambdas in
  functions/batch and functions/completion).

It ships to Lambda (the DomainLayer). SageMaker's own batch transform, as the
local stack plays it, lives in critic/local/ (transform.py, transform_runner.py).
"""
