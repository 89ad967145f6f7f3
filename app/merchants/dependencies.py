"""Device authentication (`Authorization: Bearer <device secret>`) and its cache."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from app.db import SessionDep, engine_of
from app.errors import Unauthorized
from app.merchants.exceptions import CHALLENGE, DeviceRevoked, UnknownDevice
from app.merchants.models import Device
from app.merchants.service import find_device, hash_device_secret, paired_device

# The device secret's name among OpenAPI's security schemes (app.web.api_docs defines it).
DEVICE_SECRET = "deviceSecret"


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: int
    merchant_id: int


class DeviceCache:
    """Which device (and merchant) each secret belongs to, by the secret's hash.

    That never changes, so it is cached; whether a device is revoked is checked again inside
    every write transaction, so revocation acts at once. A refusal for a revoked device empties
    the cache, so its reads are refused from then on too.
    """

    def __init__(self) -> None:
        self._by_hash: dict[str, DeviceIdentity] = {}

    def get(self, secret: str) -> DeviceIdentity | None:
        return self._by_hash.get(hash_device_secret(secret))

    def remember(self, secret: str, identity: DeviceIdentity) -> None:
        self._by_hash[hash_device_secret(secret)] = identity

    def forget(self, secret: str) -> None:
        self._by_hash.pop(hash_device_secret(secret), None)

    def clear(self) -> None:
        self._by_hash.clear()


def device_cache_of(request: Request) -> DeviceCache:
    cache: DeviceCache = request.app.state.device_cache
    return cache


async def _device_cache(request: Request) -> DeviceCache:
    # A coroutine, so FastAPI does not hop to a worker thread for it (see app.dependencies).
    return device_cache_of(request)


DeviceCacheDep = Annotated[DeviceCache, Depends(_device_cache)]


def _secret(request: Request) -> str:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > 200:
        raise Unauthorized(
            "Send the device secret as 'Authorization: Bearer <secret>'.",
            code="no-device",
            headers=CHALLENGE,
        )
    return secret


def _lookup(request: Request, secret: str) -> DeviceIdentity:
    with Session(engine_of(request)) as session:
        device = find_device(session=session, secret=secret)
        if device is None or device.id is None:
            raise UnknownDevice()
        if device.revoked_at is not None:
            raise DeviceRevoked()
        return DeviceIdentity(device.id, device.merchant_id)


async def current_device(request: Request) -> DeviceIdentity:
    """The paired device making this request (cached by secret: see DeviceCache)."""
    secret = _secret(request)
    cache = device_cache_of(request)
    identity = cache.get(secret)
    if identity is None:
        identity = await run_in_threadpool(_lookup, request, secret)
        cache.remember(secret, identity)
    return identity


CurrentDevice = Annotated[DeviceIdentity, Depends(current_device)]


def device_row(request: Request, identity: CurrentDevice, session: SessionDep) -> Device:
    """The device as it is now: reads notice a revocation at once, like writes do (and forget
    the cached secret, so the ledger routes refuse it too)."""
    try:
        return paired_device(session=session, device_id=identity.device_id, challenge=False)
    except (UnknownDevice, DeviceRevoked):
        device_cache_of(request).forget(_secret(request))
        raise


CurrentDeviceRow = Annotated[Device, Depends(device_row)]
