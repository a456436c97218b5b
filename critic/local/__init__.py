"""Critic's local stack: the whole serverless application on one machine, with
no AWS account and no Docker (`critic serve`, `make run`).

- template.py   reads template.yaml (functions, buckets, API, event sources)
- ids.py        the local account and region, and EventBridge's event envelope
- aws.py        the AWS endpoint: moto's S3 + SageMaker + SageMaker Runtime
- s3.py         S3 persistence and the notifications S3 sends
- sagemaker.py  transform jobs and InvokeEndpoint over their wire protocols
- transform.py  SageMaker batch transform semantics (splitting, batching,
                joining, where outputs land), in plain Python
- transform_runner.py  runs a transform job against any object store and model
- container.py  the SageMaker PyTorch inference container, without Docker
- pool.py       first come, first served hand-out of environments and workers
- lambdas.py    Lambda execution environments (worker processes), async retries
- events.py     the event bus: S3 notifications, EventBridge rules, on-failure
                destinations
- api.py        the HTTP API (payload 2.0) and the web page
- serving.py    the HTTP servers of the endpoint and the API
- stack.py      all of it wired together
"""
