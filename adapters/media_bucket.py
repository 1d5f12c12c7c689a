"""The media bucket (S3; ministack serves it locally on the DynamoDB port): a customer's files
keyed by their stream and content hash, so `forget` finds every one of them by prefix."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError


def customer_prefix(business_id: str, user_id: str) -> str:
    return f"media/{quote(business_id, safe='')}/{quote(user_id, safe='')}/"


def object_key(business_id: str, user_id: str, sha256: str) -> str:
    """The key of a customer's file: the same file sent twice is kept once."""
    return customer_prefix(business_id, user_id) + sha256


class MediaBucket:
    """Puts, reads and deletes customers' files in one bucket (an aiobotocore S3 client)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    async def ensure(self) -> bool:
        """Create the bucket unless it exists; whether it was created."""
        try:
            await self._s3.head_bucket(Bucket=self.bucket)
            return False
        except ClientError:
            await self._s3.create_bucket(Bucket=self.bucket)
            return True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and content type; None if there is none."""
        try:
            found = await self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        async with found["Body"] as body:
            return await body.read(), str(found.get("ContentType") or "application/octet-stream")

    async def keys(self, prefix: str) -> list[str]:
        """The keys under `prefix`; none if the bucket was never created (no file was ever kept)."""
        found: list[str] = []
        token: dict[str, str] = {}
        while True:
            try:
                page = await self._s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **token)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                    return found
                raise
            found += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def delete_customer(self, business_id: str, user_id: str) -> list[str]:
        """Delete every file of one customer; the keys deleted."""
        keys = await self.keys(customer_prefix(business_id, user_id))
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            await self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return keys
