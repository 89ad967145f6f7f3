"""The till: a paired cashier device scans cards and stamps, redeems, undoes."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
