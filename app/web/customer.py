"""Customer pages: get a card, the card itself, backup, my data, where it works."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
