"""CDK constructs and the stack that deploy bucketzip (see app.py and cdk.json)."""
