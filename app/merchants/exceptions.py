"""Refusals of the merchant domain: a request that cannot be carried out, a device not (or no
longer) paired."""

from app.errors import AppError, Unauthorized

# A device request without a valid secret is told how to authenticate (RFC 6750).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="treu"'}


class MerchantError(AppError):
    """A merchant, program or device request that cannot be carried out."""


class UnknownDevice(Unauthorized):
    def __init__(self, *, challenge: bool = True) -> None:
        super().__init__(
            "This device is not paired with treu.",
            code="unknown-device",
            headers=dict(CHALLENGE) if challenge else None,
        )


class DeviceRevoked(Unauthorized):
    title = "Device revoked"

    def __init__(self, *, challenge: bool = True) -> None:
        super().__init__(
            "This device was revoked by the shop owner. Pair it again to keep using it.",
            code="device-revoked",
            headers=dict(CHALLENGE) if challenge else None,
        )


class PairingRefused(AppError):
    """A pairing code that cannot be redeemed; nothing was written."""

    status = 410
    title = "Pairing code not valid"


class LoginRequired(AppError):
    """No valid owner session: browsers are sent to the login page, API callers get 401."""

    status = 401
    title = "Please log in"


class CsrfRefused(AppError):
    status = 403
    title = "Form expired"


class OwnerForbidden(AppError):
    status = 403
    title = "Not yours"
