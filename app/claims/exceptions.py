"""Why a claim code is refused once it was found: used, expired, or its till unpaired."""

from app.errors import AppError


class ClaimGone(AppError):
    status = 410
    title = "Code no longer valid"
