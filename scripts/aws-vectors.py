#!/usr/bin/env python3
"""Reference vectors for src/provider/aws/sigv4.rs and src/wire/bedrock/eventstream.rs, made by
botocore (the AWS SDK for Python), so the Rust code is checked against AWS's own implementation
rather than against itself.

    python3 -m venv /tmp/boto && /tmp/boto/bin/pip install botocore==1.44.18
    /tmp/boto/bin/python scripts/aws-vectors.py

It prints Rust constants for the tests. It asserts along the way:
  * every Bedrock vector signed with `SigV4Auth` directly equals what the real `bedrock-runtime`
    client signs for InvokeModel / InvokeModelWithResponseStream (its request captured before
    sending), so the headers the vectors sign are the ones the SDK signs;
  * botocore reproduces AWS's published signatures for the aws-sig-v4-test-suite cases and the
    IAM ListUsers example of the Signature Version 4 documentation;
  * each event-stream frame built here (independently of the Rust encoder, with struct and zlib)
    decodes with botocore's `EventStreamBuffer` to the headers and payload it was built from.
"""

import base64
import datetime
import json
import struct
import zlib
from unittest import mock

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/+=="
HOST = "bedrock-runtime.us-east-1.amazonaws.com"
WHEN = datetime.datetime(2025, 10, 1, 12, 34, 56)  # 1759322096 seconds after the epoch
BODY = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'
MODELS = [
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
]


def sign(method, url, headers, body, region, service, when, token=None):
    """The signed request, and the canonical request botocore built while signing it."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), service, region)
    built = []
    canonical_request = signer.canonical_request
    signer.canonical_request = lambda r: built.append(canonical_request(r)) or built[-1]
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(request)
    return request, built[0]


def sdk_requests(token):
    """What the real client sends (captured before it goes anywhere), by (model, streaming)."""
    captured = {}

    def before_send(request, **_):
        captured[(current["model"], current["stream"])] = request
        raw = mock.Mock()
        raw.stream = lambda *a, **k: iter([b"{}"])
        return AWSResponse(request.url, 200, {"content-type": "application/json"}, raw)

    session = botocore.session.get_session()
    client = session.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=token,
    )
    client.meta.events.register("before-send", before_send)
    current = {}
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        for model in MODELS:
            for stream in (False, True):
                current.update(model=model, stream=stream)
                call = client.invoke_model_with_response_stream if stream else client.invoke_model
                try:
                    call(modelId=model, body=BODY, contentType="application/json", accept="application/json")
                except Exception:  # the canned response is no valid answer; the request is all we need
                    pass
    return captured


def bedrock_vectors():
    out = []
    for token in (None, SESSION_TOKEN):
        sdk = sdk_requests(token)
        for model in MODELS:
            for stream in (False, True):
                sent = sdk[(model, stream)]
                url = sent.url
                # the model id is one path segment: every reserved byte percent-encoded
                assert url.startswith(f"https://{HOST}/model/") and "/" not in url.split("/model/")[1].rsplit("/", 1)[0]
                accept = "x-amzn-bedrock-accept" if stream else "accept"
                headers = [("content-type", "application/json"), (accept, "application/json")]
                request, canonical = sign("POST", url, headers, BODY, "us-east-1", "bedrock", WHEN, token)
                sdk_auth = sent.headers["Authorization"].decode()
                assert request.headers["Authorization"] == sdk_auth, (request.headers["Authorization"], sdk_auth)
                assert "x-amz-content-sha256" not in {k.lower() for k in sent.headers}
                path = url[len(f"https://{HOST}"):]
                out.append((path, stream, token is not None, sdk_auth, canonical))
    return out


SUITE_WHEN = datetime.datetime(2015, 8, 30, 12, 36, 0)
# (name, method, url, headers, body, service, AWS's published signature)
SUITE = [
    ("get-vanilla", "GET", "https://example.amazonaws.com/", [], b"", "service",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("post-vanilla", "POST", "https://example.amazonaws.com/", [], b"", "service",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", [],
     b"", "service", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("post-x-www-form-urlencoded", "POST", "https://example.amazonaws.com/",
     [("content-type", "application/x-www-form-urlencoded")], b"Param1=value1", "service",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ("get-utf8", "GET", "https://example.amazonaws.com/\u1234", [], b"", "service",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("iam-list-users", "GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
     [("content-type", "application/x-www-form-urlencoded; charset=utf-8")], b"", "iam",
     "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
]


def suite_vectors():
    for name, method, url, headers, body, service, published in SUITE:
        request, _ = sign(method, url, headers, body, "us-east-1", service, SUITE_WHEN)
        auth = request.headers["Authorization"]
        assert auth.endswith("Signature=" + published), (name, auth)
    return SUITE


def frame(headers, payload):
    """An event-stream message, built from the format's description alone."""
    encoded = b""
    for name, value in headers:
        name = name.encode()
        value = value.encode()
        encoded += struct.pack(">B", len(name)) + name + b"\x07" + struct.pack(">H", len(value)) + value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def bedrock_frames():
    start = json.dumps(
        {"type": "message_start", "message": {"id": "msg_bdrk_01", "type": "message", "role": "assistant",
                                              "model": "claude-sonnet-4-5-20250929", "content": [],
                                              "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": 8, "output_tokens": 1}}},
        separators=(",", ":")).encode()
    chunk = json.dumps({"bytes": base64.b64encode(start).decode(), "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"},
                       separators=(",", ":")).encode()
    frames = [
        ("CHUNK", [(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
         chunk, start),
        ("THROTTLING", [(":exception-type", "throttlingException"), (":content-type", "application/json"),
                        (":message-type", "exception")],
         b'{"message":"Too many requests, please wait before trying again."}', None),
    ]
    out = []
    for name, headers, payload, inner in frames:
        data = frame(headers, payload)
        buffer = EventStreamBuffer()
        # two pieces, split inside the headers, as a socket may deliver them
        buffer.add_data(data[:20])
        assert list(buffer) == []
        buffer.add_data(data[20:])
        (message,) = list(buffer)
        assert message.headers == dict(headers) and message.payload == payload
        out.append((name, headers, payload, inner, data))
    return out


def rust_str(s):
    return json.dumps(s, ensure_ascii=False)


def main():
    print("// Generated by scripts/aws-vectors.py (botocore 1.44.18); do not edit by hand.")
    print("// (path, streaming, with session token, Authorization botocore sends)")
    print("const BOTOCORE_BEDROCK: &[(&str, bool, bool, &str)] = &[")
    canonical = None
    for path, stream, token, auth, cr in bedrock_vectors():
        print(f"    ({rust_str(path)}, {str(stream).lower()}, {str(token).lower()}, {rust_str(auth)}),")
        if MODELS[2].split(":")[0] in path and not stream and not token:
            canonical = cr
    print("];")
    print("// botocore's canonical request for the ARN, InvokeModel, no session token")
    print(f"const BOTOCORE_CANONICAL_ARN: &str = {rust_str(canonical)};")
    suite_vectors()
    print("// each of the test suite's published signatures was reproduced by botocore")
    for name, headers, payload, inner, data in bedrock_frames():
        print(f"// {name}: headers {headers}")
        print(f"const {name}_FRAME: &str = \"{data.hex()}\";")
        print(f"const {name}_PAYLOAD: &str = {rust_str(payload.decode())};")
        if inner is not None:
            print(f"const {name}_INNER: &str = {rust_str(inner.decode())};")


if __name__ == "__main__":
    main()
