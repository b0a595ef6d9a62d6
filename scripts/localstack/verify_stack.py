"""Proves that an AWS endpoint holds what the chat backend expects, as LocalStack's init
script (localstack/init/ready.d/10-chat-resources.sh) leaves it, and that the local
gateway works on it without `--create-tables`.

1. Every DynamoDB table, S3 bucket and SNS topic of template.yaml is there under the name
   the gateway uses by default, as the template declares it: keys, attribute types,
   billing, global secondary indexes with their projections, TTL; the bucket's CORS rules,
   public access block, ownership controls, encryption and lifecycle. This compares the
   live resources with template.yaml itself, not with the generated request files.
2. A round trip through a running `local-gateway serve`: two users sign up over HTTP, open
   a direct channel, upload a file to the bucket, connect over WebSocket, a message to an
   offline user becomes a push on the topic, a message with the file is delivered live and
   downloaded, history and the channel list are read back, and going offline is announced
   by the presence sweep. Every table and both indexes are used on the way.
3. Nothing else with the gateway's prefix exists: the gateway created nothing itself.

Runs against moto (scripts/check_localstack.sh) or a real LocalStack:

  AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
  AWS_DEFAULT_REGION=us-east-1 .venv/bin/python scripts/localstack/verify_stack.py \\
      --gateway http://127.0.0.1:8080

Options: --template PATH, --gateway URL (omit to check the resources only), --stage NAME
(the gateway's, default local), --gateway-log PATH (fail on ERROR lines in it),
--moto (also read the published push from moto's state).
"""

import argparse
import base64
import hashlib
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import localstack_resources as lr  # noqa: E402  (scripts/localstack_resources.py)


class Failed(Exception):
    pass


def step(text):
    print(f"  ok  {text}", flush=True)


def outcome(problems, before, text):
    """`ok` when checking this resource found no new problem."""
    print(f"  {'ok ' if len(problems) == before else 'BAD'} {text}", flush=True)


# ---------------------------------------------------------------- resources


def clients():
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise Failed("AWS_ENDPOINT_URL is not set: point it at LocalStack (or moto)")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)
    s3_config = Config(s3={"addressing_style": "path"})
    return (
        session.client("dynamodb", endpoint_url=endpoint),
        session.client("s3", endpoint_url=endpoint, config=s3_config),
        session.client("sns", endpoint_url=endpoint),
    )


def keys(schema):
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def indexes(declared_or_described):
    return {
        i["IndexName"]: (
            keys(i["KeySchema"]),
            i.get("Projection", {}).get("ProjectionType", "ALL"),
            sorted(i.get("Projection", {}).get("NonKeyAttributes", [])),
        )
        for i in declared_or_described or []
    }


def same(problems, what, live, declared):
    if live != declared:
        problems.append(f"{what}: the endpoint has {live!r}, template.yaml declares {declared!r}")


def check_table(ddb, name, props, problems):
    before = len(problems)
    try:
        table = ddb.describe_table(TableName=name)["Table"]
    except ClientError as e:
        problems.append(f"table {name} is missing ({e.response['Error']['Code']})")
        outcome(problems, before, f"table {name}")
        return
    same(problems, f"{name} key schema", keys(table["KeySchema"]), keys(props["KeySchema"]))
    same(
        problems,
        f"{name} attribute definitions",
        sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
        sorted((a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]),
    )
    billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    same(problems, f"{name} billing mode", billing, props.get("BillingMode", "PROVISIONED"))
    same(
        problems,
        f"{name} global secondary indexes (keys, projection)",
        indexes(table.get("GlobalSecondaryIndexes")),
        indexes(props.get("GlobalSecondaryIndexes")),
    )
    same(
        problems,
        f"{name} local secondary indexes (keys, projection)",
        indexes(table.get("LocalSecondaryIndexes")),
        indexes(props.get("LocalSecondaryIndexes")),
    )
    if "StreamSpecification" in props:
        same(
            problems,
            f"{name} stream",
            table.get("StreamSpecification", {}).get("StreamViewType"),
            props["StreamSpecification"].get("StreamViewType"),
        )
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    declared_ttl = props.get("TimeToLiveSpecification") or {}
    if declared_ttl.get("Enabled"):
        same(
            problems,
            f"{name} TTL",
            (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")),
            ("ENABLED", declared_ttl["AttributeName"]),
        )
    else:
        same(problems, f"{name} TTL status", ttl.get("TimeToLiveStatus"), "DISABLED")
    summary = ", ".join(
        [f"keys {'+'.join(a for a, _ in keys(props['KeySchema']))}"]
        + [f"index {i}" for i in indexes(props.get("GlobalSecondaryIndexes"))]
        + ([f"TTL {declared_ttl['AttributeName']}"] if declared_ttl.get("Enabled") else [])
    )
    outcome(problems, before, f"table {name}: {summary}")


def s3_setting(s3, call, name, key):
    """The bucket setting, or None when the bucket has none."""
    try:
        return call(Bucket=name)[key]
    except ClientError as e:
        if e.response["Error"]["Code"].startswith("NoSuch") or "NotFound" in e.response["Error"]["Code"]:
            return None
        raise


def check_bucket(s3, name, props, problems):
    before = len(problems)
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as e:
        problems.append(f"bucket {name} is missing ({e.response['Error']['Code']})")
        outcome(problems, before, f"bucket {name}")
        return
    if "CorsConfiguration" in props:
        rules = s3_setting(s3, s3.get_bucket_cors, name, "CORSRules") or []
        back = {"ID": "Id", "AllowedHeaders": "AllowedHeaders", "AllowedMethods": "AllowedMethods",
                "AllowedOrigins": "AllowedOrigins", "ExposeHeaders": "ExposedHeaders", "MaxAgeSeconds": "MaxAge"}
        live = [{back[k]: v for k, v in rule.items() if k in back} for rule in rules]
        same(problems, f"{name} CORS rules", live, props["CorsConfiguration"]["CorsRules"])
    if "PublicAccessBlockConfiguration" in props:
        live = s3_setting(s3, s3.get_public_access_block, name, "PublicAccessBlockConfiguration")
        same(problems, f"{name} public access block", live, props["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in props:
        live = s3_setting(s3, s3.get_bucket_ownership_controls, name, "OwnershipControls")
        same(problems, f"{name} ownership controls", (live or {}).get("Rules"), props["OwnershipControls"]["Rules"])
    if "BucketEncryption" in props:
        declared = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        rules = (s3_setting(s3, s3.get_bucket_encryption, name, "ServerSideEncryptionConfiguration") or {}).get("Rules", [])
        live = []
        for i, rule in enumerate(rules):
            back = {"ServerSideEncryptionByDefault": rule.get("ApplyServerSideEncryptionByDefault")}
            # S3 answers BucketKeyEnabled: false when it was never set; compare it only when declared.
            if "BucketKeyEnabled" in (declared[i] if i < len(declared) else {}):
                back["BucketKeyEnabled"] = rule.get("BucketKeyEnabled")
            live.append(back)
        same(problems, f"{name} encryption", live, declared)
    if "LifecycleConfiguration" in props:
        rules = s3_setting(s3, s3.get_bucket_lifecycle_configuration, name, "Rules") or []
        live = []
        for rule in rules:
            back = {"Status": rule["Status"]}
            if "ID" in rule:
                back["Id"] = rule["ID"]
            rule_filter = rule.get("Filter", {})
            both = rule_filter.get("And", {})
            prefix = both.get("Prefix", rule_filter.get("Prefix", rule.get("Prefix", "")))
            if prefix:
                back["Prefix"] = prefix
            tags = both.get("Tags", [rule_filter["Tag"]] if "Tag" in rule_filter else [])
            if tags:
                back["TagFilters"] = [{"Key": t["Key"], "Value": t["Value"]} for t in tags]
            if "AbortIncompleteMultipartUpload" in rule:
                back["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
            if "Days" in rule.get("Expiration", {}):
                back["ExpirationInDays"] = rule["Expiration"]["Days"]
            live.append(back)
        same(problems, f"{name} lifecycle rules", live, props["LifecycleConfiguration"]["Rules"])
    outcome(problems, before, f"bucket {name}: {', '.join(sorted(props)) or 'no settings'}")


def topic_arns(sns):
    arns = []
    for page in sns.get_paginator("list_topics").paginate():
        arns += [t["TopicArn"] for t in page["Topics"]]
    return arns


def check_resources(template, prefix, ddb, s3, sns):
    problems = []
    for logical_id, props in lr.resources_of(template, lr.TABLE):
        check_table(ddb, f"{prefix}{logical_id}", props, problems)
    for logical_id, props in lr.resources_of(template, lr.BUCKET):
        check_bucket(s3, f"{prefix}{logical_id}".lower(), props, problems)
    arns = topic_arns(sns)
    for logical_id, _ in lr.resources_of(template, lr.TOPIC):
        name = f"{prefix}{logical_id}"
        found = [a for a in arns if a.split(":")[-1] == name]
        if not found:
            problems.append(f"topic {name} is missing (topics: {arns})")
        else:
            sns.get_topic_attributes(TopicArn=found[0])
            step(f"topic {found[0]}")
    if problems:
        raise Failed("the resources are not what template.yaml declares:\n    " + "\n    ".join(problems))


def check_nothing_else(template, prefix, ddb, s3, sns):
    tables = []
    for page in ddb.get_paginator("list_tables").paginate():
        tables += [t for t in page["TableNames"] if t.startswith(prefix)]
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", []) if b["Name"].startswith(prefix.lower())]
    topics = [a.split(":")[-1] for a in topic_arns(sns) if a.split(":")[-1].startswith(prefix)]
    declared = {
        "tables": sorted(f"{prefix}{i}" for i, _ in lr.resources_of(template, lr.TABLE)),
        "buckets": sorted(f"{prefix}{i}".lower() for i, _ in lr.resources_of(template, lr.BUCKET)),
        "topics": sorted(f"{prefix}{i}" for i, _ in lr.resources_of(template, lr.TOPIC)),
    }
    live = {"tables": sorted(tables), "buckets": sorted(buckets), "topics": sorted(topics)}
    if live != declared:
        raise Failed(f"resources named {prefix}*: the endpoint has {live}, template.yaml declares {declared}")
    step(f"exactly the template's {len(tables)} tables, {len(buckets)} bucket(s), {len(topics)} topic(s): nothing else")


# ---------------------------------------------------------------- HTTP and WebSocket


def http(method, url, token=None, body=None, headers=None, raw=None):
    """(status, parsed JSON or bytes)"""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, payload


def expect(status, payload, wanted, what):
    if status != wanted:
        raise Failed(f"{what}: HTTP {status} (wanted {wanted}): {payload!r}")
    return payload


class WebSocket:
    """Just enough of RFC 6455 for JSON text frames (the standard library has no client)."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=15.0):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock.sendall(
            (
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failed(f"WebSocket {parts.path}: the gateway closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status != 101:
            raise Failed(f"WebSocket handshake refused: {lines[0]}")
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != accept:
            raise Failed("WebSocket handshake: wrong Sec-WebSocket-Accept")

    def _exactly(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failed("WebSocket closed by the gateway")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout):
        """The next JSON frame within `timeout` seconds."""
        self.sock.settimeout(timeout)
        message = b""
        try:
            while True:
                first, second = self._exactly(2)
                n = second & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._exactly(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._exactly(8))[0]
                mask = self._exactly(4) if second & 0x80 else None
                payload = self._exactly(n)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                opcode = first & 0x0F
                if opcode == 0x9:
                    self._send_frame(0xA, payload)
                elif opcode == 0x8:
                    raise Failed(f"WebSocket closed by the gateway: {payload[2:].decode(errors='replace')}")
                elif opcode in (0x0, 0x1):
                    message += payload
                    if first & 0x80:
                        return json.loads(message)
        except socket.timeout:
            raise Failed(f"no WebSocket frame within {timeout} s") from None

    def recv_until(self, what, matches, timeout=15.0):
        """Reads frames until one matches; others (presence, receipts) are passed over."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{what}: not received within {timeout} s; frames seen: {seen}")
            try:
                frame = self.recv(left)
            except Failed as e:
                raise Failed(f"{what}: {e}; frames seen: {seen}") from None
            if matches(frame):
                return frame
            seen.append(frame)

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
            self.sock.settimeout(5)
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        finally:
            self.sock.close()


# ---------------------------------------------------------------- round trip


def moto_push_count(user, text):
    """Pushes to `user` carrying `text` that moto's SNS holds (moto only)."""
    url = os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/moto-api/data.json"
    with urllib.request.urlopen(url, timeout=30) as response:
        data = json.load(response)
    count = 0
    for topic in data.get("sns", {}).get("Topic", []):
        for notification in topic.get("sent_notifications", []):
            flat = json.dumps(notification)
            if text in flat and user in flat:
                count += 1
    return count


def multipart(fields, file_bytes):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\n\r\n'.encode()
    body += file_bytes + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def round_trip(gateway, stage, moto):
    gateway = gateway.rstrip("/")
    ws_base = "ws" + gateway[len("http"):] + f"/{stage}"
    suffix = uuid.uuid4().hex[:8]
    names = {"alice": f"alice-{suffix}", "bob": f"bob-{suffix}"}
    sessions = {}
    for who, username in names.items():
        _, session = http("POST", f"{gateway}/auth/signup", body={"username": username, "password": f"pw-{uuid.uuid4()}"})
        sessions[who] = expect(_, session, 201, f"sign up {username}")
    alice, bob = names["alice"], names["bob"]
    alice_token, bob_token = sessions["alice"]["accessToken"], sessions["bob"]["accessToken"]
    step(f"signed up {alice} and {bob} (POST /auth/signup: UsersTable)")

    status, channel = http("POST", f"{gateway}/channels/direct", alice_token, {"userId": bob})
    channel_id = expect(status, channel, 200, "open the direct channel")["channelId"]
    # Bob is invited, not added: he accepts (ChannelsTable: his invitation inbox).
    status, accepted = http("POST", f"{gateway}/invitations/{channel_id}/accept", bob_token, {})
    expect(status, accepted, 200, "accept the invitation as bob")
    status, listing = http("GET", f"{gateway}/channels", bob_token)
    listed = [c["channelId"] for c in expect(status, listing, 200, "list bob's channels")["channels"]]
    if channel_id not in listed:
        raise Failed(f"GET /channels as bob does not list {channel_id}: {listing}")
    step(f"direct channel {channel_id}, in bob's GET /channels (ChannelsTable, index UserChannels)")

    content = f"hello from the LocalStack check {suffix}\n".encode()
    status, grant = http(
        "POST",
        f"{gateway}/channels/{channel_id}/uploads",
        alice_token,
        {"fileName": "hello.txt", "contentType": "text/plain", "size": len(content)},
    )
    expect(status, grant, 201, "ask for an upload grant")
    body, content_type = multipart(grant["fields"], content)
    status, answer = http("POST", grant["url"], raw=body, headers={"Content-Type": content_type})
    if not 200 <= status < 300:
        raise Failed(f"presigned POST to {grant['url']}: HTTP {status}: {answer!r}")
    step(f"uploaded {grant['key']} with the presigned POST (the uploads bucket)")

    refused = None
    try:
        WebSocket(f"{ws_base}?token=not-a-token").close()
    except Failed as e:
        refused = str(e)
    if not refused or "401" not in refused:
        raise Failed(f"a WebSocket with a bad token was not refused with 401 ({refused})")
    alice_ws = WebSocket(f"{ws_base}?token={urllib.parse.quote(alice_token)}")
    step("alice connected over WebSocket (PresenceTable, RateLimitsTable); a bad token gets 401")

    away = f"while you were away {suffix}"
    alice_ws.send({"action": "sendMessage", "channelId": channel_id, "clientMsgId": "m1", "text": away})
    ack = alice_ws.recv_until("the ack of m1", lambda f: f.get("type") in ("ack", "error"))
    if ack.get("type") != "ack":
        raise Failed(f"sendMessage m1 answered {ack}")
    if moto:
        deadline = time.monotonic() + 10
        while moto_push_count(bob, away) < 1:
            if time.monotonic() > deadline:
                raise Failed("no push for offline bob was published to the push topic")
            time.sleep(0.2)
        step("message to offline bob stored (MessagesTable) and pushed to the topic with his user id")
    else:
        step("message to offline bob stored (MessagesTable); its push went to the topic (not read back: --moto is off)")

    # Presence is lazy: alice's connection subscribes to the channel's members first.
    alice_ws.send({"action": "subscribePresence", "channelId": channel_id})
    alice_ws.recv_until("alice's presence subscription", lambda f: f.get("type") in ("presenceState", "error"))
    bob_ws = WebSocket(f"{ws_base}?token={urllib.parse.quote(bob_token)}")
    alice_ws.recv_until(
        "presence: bob online",
        lambda f: f.get("type") == "presence" and f.get("userId") == bob and f.get("status") == "online",
    )
    step("bob connected; alice, subscribed to the channel's presence, is told he is online")

    attachment = {"key": grant["key"], "fileName": "hello.txt", "contentType": "text/plain", "size": len(content)}
    live_text = f"here is the file {suffix}"
    alice_ws.send(
        {"action": "sendMessage", "channelId": channel_id, "clientMsgId": "m2", "text": live_text, "attachments": [attachment]}
    )
    ack = alice_ws.recv_until("the ack of m2", lambda f: f.get("type") in ("ack", "error"))
    if ack.get("type") != "ack":
        raise Failed(f"sendMessage m2 answered {ack}")
    delivered = bob_ws.recv_until("bob's copy of m2", lambda f: f.get("type") == "message")["message"]
    if delivered["text"] != live_text or delivered["authorId"] != alice or delivered["seq"] != 2:
        raise Failed(f"bob got {delivered}")
    status, downloaded = http("GET", delivered["attachments"][0]["url"])
    if status != 200 or downloaded != content:
        raise Failed(f"downloading the attachment: HTTP {status}: {downloaded!r}")
    step("bob got alice's message live and downloaded its file (presigned GET)")

    status, page = http("GET", f"{gateway}/channels/{channel_id}/messages", bob_token)
    texts = [(m["seq"], m["text"]) for m in expect(status, page, 200, "read the history")["messages"]]
    if texts != [(2, live_text), (1, away)]:
        raise Failed(f"history of {channel_id}: {texts}")
    step("history over HTTP has both messages, newest first")

    bob_ws.close()
    alice_ws.recv_until(
        "presence: bob offline",
        lambda f: f.get("type") == "presence" and f.get("userId") == bob and f.get("status") == "offline",
        timeout=30,
    )
    step("bob left; the presence sweep told alice he is offline (PresenceTable, index OnlineByDeadline)")
    alice_ws.close()


def check_log(path):
    colour = re.compile(r"\x1b\[[0-9;]*m")
    with open(path, errors="replace") as f:
        lines = [colour.sub("", line).rstrip() for line in f]
    # `2026-11-23T13:09:51.06Z ERROR message`, and panics.
    errors = [line for line in lines if re.match(r"\S+\s+ERROR\b", line) or "panicked" in line]
    if errors:
        raise Failed(f"the gateway logged errors ({path}):\n    " + "\n    ".join(errors[:20]))
    step("the gateway logged no errors")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=lr.DEFAULT_TEMPLATE)
    parser.add_argument("--gateway", help="base URL of a running local-gateway serve")
    parser.add_argument("--stage", default="local")
    parser.add_argument("--gateway-log")
    parser.add_argument("--moto", action="store_true", help="the endpoint is moto: read the published push back")
    args = parser.parse_args()
    try:
        template = lr.load_template(args.template)
        prefix = os.environ.get("TABLE_PREFIX") or lr.gateway_prefix()
        ddb, s3, sns = clients()
        print(f"== resources at {os.environ['AWS_ENDPOINT_URL']} against {os.path.relpath(args.template)}", flush=True)
        check_resources(template, prefix, ddb, s3, sns)
        if args.gateway:
            print(f"== round trip through the local gateway at {args.gateway}", flush=True)
            round_trip(args.gateway, args.stage, args.moto)
            if args.gateway_log:
                check_log(args.gateway_log)
        check_nothing_else(template, prefix, ddb, s3, sns)
    except Failed as failure:
        print(f"verify_stack: FAILED: {failure}", file=sys.stderr)
        return 1
    print("verify_stack: the endpoint holds what the code expects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
