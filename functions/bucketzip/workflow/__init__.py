"""Running the bucketzip state machine: locally over moto, or in a deployed stack.

- `server`:   an embedded moto server (S3, DynamoDB, IAM, Lambda, Step Functions) in this process
- `lambdas`:  dispatch of moto's Lambda Invoke to the in-process handlers (no Docker)
- `moto_patches`: the few documented fixes to moto's Step Functions interpreter
- `definition`: statemachine/archive.asl.json with its ${Placeholders} filled
- `local`:    `LocalWorkflow`, the harness: register the handlers, create the REAL
              statemachine/archive.asl.json in moto, run executions (demo and tests)
- `deployed`: `start` / `watch` an execution of a deployed state machine (any endpoint)
- `naming`:   run ids derived from execution names (shared with the Lambda handlers)
- `demo`:     `bucketzip demo`

This package imports moto lazily: the Lambda handlers only use `naming`.
"""
