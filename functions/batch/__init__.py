"""BatchFunction: S3 upload -> SageMaker transform job."""
