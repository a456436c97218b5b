"""The AWS edge of Critic: `critic deploy`, `critic destroy` and
`critic train --sagemaker`. Everything here talks to AWS (boto3, the SageMaker
Python SDK, the SAM CLI); what it decides is kept in small functions that
tests drive with moto, botocore's Stubber and an injected command runner.

- aws.py       sessions, the --dry-run plan, AWS errors as plain messages
- buckets.py   private buckets (encrypted, public access blocked, TLS only)
               and content-addressed uploads
- artifact.py  the model.tar.gz to deploy: local file, model dir or s3:// URI
- stack.py     template.yaml facts and the CloudFormation stack's states
- sam.py       the `sam build` / `sam deploy` command lines and samconfig.toml
- flows.py     deploy and destroy, step by step
- training.py  the SageMaker PyTorch estimator that runs model/train.py
"""
