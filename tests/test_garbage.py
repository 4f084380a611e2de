"""Hostile input: hundreds of random and garbled requests, each must get a 4xx AWS error —
never a 5xx, a hang or a crash — and the server must still answer afterwards."""

import random
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from test_foundation import code_of, send

ACTIONS = ["DescribeRegions", "DescribeTags", "CreateTags", "DeleteTags", "DescribeKeyPairs",
           "CreateKeyPair", "ImportKeyPair", "DeleteKeyPair", "DescribeInstanceTypes",
           "DescribeAvailabilityZones", "DescribeAccountAttributes", "RunInstances", "CreateVolume",
           "", "\u00e9\u00e9", "Describe%00Regions"]
KEYS = ["Filter.1.Name", "Filter.1.Value.1", "Filter.0.Name", "Filter.99999999999999999999.Name",
        "Filter.-1.Value.1", "Filter.1.Value.4294967296", "MaxResults", "NextToken", "KeyName",
        "KeyType", "ResourceId.1", "Tag.1.Key", "Tag.1.Value", "Tag.1000000.Key", "DryRun",
        "PublicKeyMaterial", "TagSpecification.1.Tag.1.Key", "TagSpecification.1.ResourceType",
        "Filter..Name", "Filter.1.", ".", "Filter.1.Name.Extra", "a" * 300, "KeyPairId.1",
        "InstanceType.1", "RegionName.1", "Filter.1.Value.1.Deep.2"]
VALUES = ["", "x", "-1", "0", "99999999999999999999999999", "1e309", "NaN", "true", "false", "TRUE",
          "\u0000", "\ud7ff", "%ZZ", "*" * 1000, "?" * 50, "<xml>&amp;", "key-" + "f" * 17,
          "\U0001F600" * 10, "rsa", "ed25519", "=" * 10, "AAAA" * 100]


def random_form(rng):
    pairs = [("Action", rng.choice(ACTIONS)), ("Version", rng.choice(["2016-11-15", "1999-01-01", ""]))]
    for _ in range(rng.randint(0, 12)):
        pairs.append((rng.choice(KEYS), rng.choice(VALUES)))
    body = urllib.parse.urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
    mutation = rng.random()
    if mutation < 0.15:  # broken percent-encoding and invalid UTF-8
        body += rng.choice([b"&Bad=%", b"&Bad=%G1", b"&%FF%FE=1", b"&Key=\xff\xfe", b"&&&=&="])
    elif mutation < 0.25:  # random bytes
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400)))
    return body


def signed(endpoint, body, rng):
    request = AWSRequest(method="POST", url=endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    if rng.random() < 0.85:
        SigV4Auth(Credentials("test", "test"), "ec2", "us-east-1").add_auth(request)
    headers = dict(request.headers)
    if rng.random() < 0.05:
        headers["Authorization"] = rng.choice([
            "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=", "Basic dGVzdDp0ZXN0",
            "AWS4-HMAC-SHA256 Credential=test/2/3/4/5/6, SignedHeaders=, Signature=zz",
            "AWS4-HMAC-SHA256 Credential=test/20990101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
        ])
    return headers


def test_hostile_forms_get_4xx(nimbus):
    rng = random.Random(20261123)
    failures = []
    for i in range(400):
        body = random_form(rng)
        headers = signed(nimbus.endpoint, body, rng)
        status, text = send(nimbus.endpoint + "/", body, headers)
        if status == 200:
            continue  # some random forms are valid requests
        if not (400 <= status < 500) or code_of(text) is None:
            failures.append((i, status, body[:200], text[:300]))
    assert not failures, failures[:5]
    assert nimbus.process.poll() is None, "server died"
    status, _ = send(nimbus.endpoint + "/", b"", {})
    assert 400 <= status < 500


def test_hostile_uris_and_methods(nimbus):
    for method, path in [("PUT", "/"), ("DELETE", "/x"), ("GET", "/?Action=DescribeRegions"),
                         ("GET", "/%ff%fe"), ("POST", "/../../etc/passwd"), ("PATCH", "/")]:
        status, text = send(nimbus.endpoint + path, b"Action=DescribeRegions" if method != "GET" else None,
                            {}, method=method)
        assert 400 <= status < 500, (method, path, status, text)
