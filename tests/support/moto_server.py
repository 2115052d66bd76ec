"""In-process moto server (S3, DynamoDB, Step Functions...) on 127.0.0.1, for tests.

The product's own embedded server (bucketzip.local.server, also used by the demo):
it runs in this process (ThreadedMotoServer) so tests can monkeypatch moto's backends
and see the effect on requests served over HTTP, and it points the AWS_* environment at
itself, so product code using plain boto3.client("s3") talks to it without knowing.
"""

from bucketzip.local.server import FAKE_AWS_ENV, REGION
from bucketzip.local.server import embedded_moto_server as running_moto_server

__all__ = ["FAKE_AWS_ENV", "REGION", "running_moto_server"]
