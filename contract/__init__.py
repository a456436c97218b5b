"""What the model, the Lambda handlers and the batch code agree on. Plain
Python, no AWS imports: it ships in the model artifact's code/ and in the
Lambda DomainLayer from this one source folder."""
