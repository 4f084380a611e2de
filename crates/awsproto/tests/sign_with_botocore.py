"""Signs EC2 requests exactly as boto3 does, without sending them, and prints them as JSON.

Used by tests/sigv4_oracles.rs. Each request is captured at botocore's `before-send` event,
after signing, and the send is stopped there.
"""

import json
import sys

import botocore.session

ENDPOINT = "http://localhost:4566"


class Captured(Exception):
    pass


def main():
    session = botocore.session.get_session()
    requests = []

    def capture(request, **_):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = [
            [name, value.decode() if isinstance(value, bytes) else value]
            for name, value in request.headers.items()
        ]
        requests.append({"method": request.method, "url": request.url,
                         "headers": headers, "body_hex": body.hex()})
        raise Captured()

    def client(token=None):
        ec2 = session.create_client(
            "ec2", region_name="us-east-1", endpoint_url=ENDPOINT,
            aws_access_key_id="test", aws_secret_access_key="test", aws_session_token=token)
        ec2.meta.events.register("before-send", capture)
        return ec2

    calls = [
        (client(), "describe_regions", {}),
        (client(), "run_instances", {
            "ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1,
            "UserData": "#!/bin/sh\necho 'hi there' && exit 0\n",
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": "caf\u00e9 \u2603 a+b&c=d/e~f*g"}]}]}),
        (client(), "describe_instances", {
            "Filters": [{"Name": "tag:Name", "Values": ["x  y", "*", "%41"]}]}),
        (client("session/token+with=odd&chars"), "describe_volumes", {}),
    ]
    for ec2, operation, params in calls:
        try:
            getattr(ec2, operation)(**params)
        except Captured:
            pass
    presigned = client().generate_presigned_url(
        "describe_regions", Params={"RegionNames": ["us-east-1"]}, ExpiresIn=300)
    # botocore signs a presigned URL with the operation's own method, POST for EC2.
    requests.append({"method": "POST", "url": presigned, "headers": [], "body_hex": ""})
    json.dump(requests, sys.stdout)


if __name__ == "__main__":
    main()
