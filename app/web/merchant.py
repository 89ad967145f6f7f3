"""The merchant area: login, program, devices, KPIs, exports, printables."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
