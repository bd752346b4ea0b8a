"""The local stand-ins' own ceilings on this machine, beside which the AWS-path figures of
scripts/bench-volume are read: DynamoDB Local's write and read rates (BatchWriteItem,
TransactWriteItems of 100 puts, BatchGetItem) and aws-ses-v2-local's SendRawEmail rate.
Prints figures; asserts nothing about time. Run by scripts/bench-stand-ins inside
scripts/with-services (which sets the endpoints)."""

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3

INVITATIONS = 1000
ITEMS_PER_INVITATION = 5  # invitation, contact link, last-invited, event: as a launch writes
BODY = "x" * 600

def client(service, endpoint):
    return boto3.client(service, endpoint_url=os.environ[endpoint], region_name="eu-north-1",
                        aws_access_key_id="local", aws_secret_access_key="local")

ddb = client("dynamodb", "DYNAMODB_ENDPOINT")
table = f"stand-in-ceiling-{uuid.uuid4().hex[:8]}"
ddb.create_table(
    TableName=table,
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
)

def item(prefix, i, j):
    return {"pk": {"S": f"{prefix}#{i}"}, "sk": {"S": f"ITEM{j}"}, "body": {"S": BODY}}

def batch_write(prefix, lo, hi):
    items = [item(prefix, i, j) for i in range(lo, hi) for j in range(ITEMS_PER_INVITATION)]
    for k in range(0, len(items), 25):
        pending = {table: [{"PutRequest": {"Item": it}} for it in items[k:k + 25]]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None

def transact(prefix, lo, hi):
    per = 100 // ITEMS_PER_INVITATION
    for i in range(lo, hi, per):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": item(prefix, k, j), "ConditionExpression": "attribute_not_exists(pk)"}}
            for k in range(i, min(i + per, hi)) for j in range(ITEMS_PER_INVITATION)])

def rate(label, work, parallel):
    prefix = uuid.uuid4().hex[:6]
    step = INVITATIONS // 10
    started = time.time()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda b: work(prefix, b * step, b * step + step), range(10)))
    elapsed = time.time() - started
    print(f"DynamoDB Local, {label}, {parallel} in parallel: {INVITATIONS / elapsed:.0f} invitations/s "
          f"({INVITATIONS * ITEMS_PER_INVITATION / elapsed:.0f} items/s)")
    return prefix

print(f"Stand-in ceilings ({os.cpu_count()} cores; {INVITATIONS} invitations of {ITEMS_PER_INVITATION} items each)")
for parallel in (1, 4):
    written = rate("BatchWriteItem (25 items a call, no conditions)", batch_write, parallel)
for parallel in (1, 4):
    rate("TransactWriteItems of 100 conditional puts", transact, parallel)
keys = [{"pk": {"S": f"{written}#{i}"}, "sk": {"S": "ITEM0"}} for i in range(INVITATIONS)]
started = time.time()
for k in range(0, len(keys), 100):
    ddb.batch_get_item(RequestItems={table: {"Keys": keys[k:k + 100]}})
print(f"DynamoDB Local, BatchGetItem (100 keys a call): {len(keys) / (time.time() - started):.0f} keys/s")

ses = client("ses", "SES_ENDPOINT")
raw = ("From: a@x.example\r\nTo: p@x.example\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n"
       "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
       + "x" * 2000 + "\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>" + "x" * 6000 + "</p>\r\n--b--\r\n").encode()
for parallel in (1, 16):
    started = time.time()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: ses.send_raw_email(RawMessage={"Data": raw}), range(100)))
    elapsed = time.time() - started
    print(f"aws-ses-v2-local, 100 SendRawEmail, {parallel} in parallel: {elapsed * 1000:.0f} ms ({100 / elapsed:.0f} mails/s)")
