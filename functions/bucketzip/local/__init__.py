"""The local emulator harness: the production workflow on this machine, no AWS account.
Needs the `local` extra (`pip install -e '.[local]'`: moto); NOT part of the Lambda asset.

- `server`:       an embedded moto server (S3, DynamoDB, IAM, Lambda, Step Functions)
- `lambdas`:      dispatch of moto's Lambda Invoke to the in-process handlers (no Docker)
- `moto_patches`: the few documented fixes to moto's Step Functions interpreter
- `definition`:   statemachine/archive.asl.json with its ${Placeholders} filled
- `workflow`:     `LocalWorkflow`: register the handlers, create the REAL state machine in
                  moto, run executions (demo and tests)
- `demo`:         `bucketzip demo`
"""
