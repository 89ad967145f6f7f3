"""Device authentication: `Authorization: Bearer <device secret>`."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from app.errors import Unauthorized
from app.merchants.service import find_device, hash_device_secret


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: int
    merchant_id: int


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="treu"'}


def _lookup(request: Request, secret: str) -> DeviceIdentity | None:
    with Session(request.app.state.engine) as session:
        device = find_device(session=session, secret=secret)
        if device is None or device.id is None:
            return None
        if device.revoked_at is not None:
            raise Unauthorized(
                "This device was revoked by the shop owner. Pair it again to keep using it.",
                title="Device revoked",
                code="device-revoked",
                headers=_CHALLENGE,
            )
        return DeviceIdentity(device.id, device.merchant_id)


async def current_device(request: Request) -> DeviceIdentity:
    """The paired device making this request.

    Which merchant a secret belongs to never changes, so it is cached; whether the device is
    revoked is checked again inside every write transaction, so revocation acts at once.
    """
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > 200:
        raise Unauthorized(
            "Send the device secret as 'Authorization: Bearer <secret>'.",
            code="no-device",
            headers=_CHALLENGE,
        )
    cache: dict[str, DeviceIdentity] = request.app.state.device_cache
    key = hash_device_secret(secret)
    identity = cache.get(key)
    if identity is None:
        identity = await run_in_threadpool(_lookup, request, secret)
        if identity is None:
            raise Unauthorized(
                "This device is not paired with treu.", code="unknown-device", headers=_CHALLENGE
            )
        cache[key] = identity
    return identity


CurrentDevice = Annotated[DeviceIdentity, Depends(current_device)]
